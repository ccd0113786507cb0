//! Test RSA keys as a JWKS: the modulus and exponent are read from the fixture public keys
//! (`-----BEGIN PUBLIC KEY-----`, a DER SubjectPublicKeyInfo) with a minimal DER reader.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::EncodingKey;
use serde_json::{Value, json};

/// One fixture key pair.
pub struct TestKey {
    pub kid: &'static str,
    pub private_pem: &'static [u8],
    pub public_pem: &'static [u8],
}

pub const KEY_1: TestKey = TestKey {
    kid: "test-key-1",
    private_pem: include_bytes!("../fixtures/test-key-1.pem"),
    public_pem: include_bytes!("../fixtures/test-key-1.pub.pem"),
};

pub const KEY_2: TestKey = TestKey {
    kid: "test-key-2",
    private_pem: include_bytes!("../fixtures/test-key-2.pem"),
    public_pem: include_bytes!("../fixtures/test-key-2.pub.pem"),
};

impl TestKey {
    pub fn encoding_key(&self) -> EncodingKey {
        EncodingKey::from_rsa_pem(self.private_pem).expect("fixture private key")
    }

    /// The public key as a JWK, shaped like Google's.
    pub fn jwk(&self) -> Value {
        let (n, e) = rsa_components(self.public_pem);
        json!({
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(n),
            "e": URL_SAFE_NO_PAD.encode(e),
        })
    }
}

/// `(n, e)` of an RSA public key PEM, big-endian without leading zero bytes.
pub fn rsa_components(pem: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let text = std::str::from_utf8(pem).expect("PEM is text");
    let b64: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    let der = STANDARD.decode(b64.trim()).expect("PEM body is base64");

    // SubjectPublicKeyInfo ::= SEQUENCE { AlgorithmIdentifier, BIT STRING { RSAPublicKey } }
    let (spki, _) = read_tlv(&der, 0x30);
    let (_algorithm, rest) = read_tlv(spki, 0x30);
    let (bits, _) = read_tlv(rest, 0x03);
    assert_eq!(bits[0], 0, "no unused bits in the key's BIT STRING");
    // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
    let (rsa, _) = read_tlv(&bits[1..], 0x30);
    let (n, rest) = read_tlv(rsa, 0x02);
    let (e, _) = read_tlv(rest, 0x02);
    (strip_zeros(n), strip_zeros(e))
}

/// Reads one DER element of the expected tag: `(contents, rest)`.
fn read_tlv(input: &[u8], tag: u8) -> (&[u8], &[u8]) {
    assert_eq!(input[0], tag, "unexpected DER tag");
    let (len, header) = match input[1] {
        short if short < 0x80 => (usize::from(short), 2),
        long => {
            let count = usize::from(long & 0x7f);
            let len = input[2..2 + count]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, 2 + count)
        }
    };
    (&input[header..header + len], &input[header + len..])
}

/// DER INTEGERs carry a leading zero when the high bit is set; JWK wants the bare magnitude.
fn strip_zeros(int: &[u8]) -> Vec<u8> {
    let start = int.iter().position(|b| *b != 0).unwrap_or(int.len());
    int[start..].to_vec()
}
