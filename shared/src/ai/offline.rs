//! The built-in provider of local mode: an SVG ad drawn from the product's name, price and
//! colours, and a caption from a template. Deterministic, instant, no network, so the demo
//! and the tests run anywhere.

use std::fmt::Write as _;

use async_trait::async_trait;
use bytes::Bytes;

use super::{AdCreative, AdRequest, AiError, AiProvider, ProductFacts, truncate};
use crate::images::{Image, ImageKind};

/// Longest caption (the product's `caption` limit).
/// Characters per line of the product name on the image, and lines at most.
const NAME_LINE: usize = 16;
const NAME_LINES: usize = 3;

/// The offline [`AiProvider`].
#[derive(Clone, Copy, Debug, Default)]
pub struct OfflineProvider;

#[async_trait]
impl AiProvider for OfflineProvider {
    async fn generate(&self, request: AdRequest<'_>) -> Result<AdCreative, AiError> {
        let facts = ProductFacts::of(request.product);
        Ok(AdCreative {
            image: Image {
                bytes: Bytes::from(render_svg(&facts, request.prompt)),
                kind: ImageKind::Svg,
            },
            caption: caption(&facts),
        })
    }
}

/// The ad as a 1024×1024 SVG. Every piece of text is escaped: a product name is user input.
pub fn render_svg(facts: &ProductFacts, prompt: Option<&str>) -> String {
    let first = facts
        .colors
        .first()
        .cloned()
        .unwrap_or_else(|| colour_from(&facts.name));
    let second = facts
        .colors
        .get(1)
        .cloned()
        .unwrap_or_else(|| shade(&first, 0.55));
    let ink = if luminance(&first) + luminance(&second) > 1.1 {
        "#111111"
    } else {
        "#FFFFFF"
    };
    let lines = wrap(&facts.name);
    let font_size = if lines.iter().any(|l| l.chars().count() > 12) {
        72
    } else {
        88
    };

    let mut svg = String::with_capacity(2048);
    let name = escape(&facts.name);
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="1024" height="1024" viewBox="0 0 1024 1024" role="img" aria-label="{name}">"##
    );
    let _ = write!(svg, "<title>{name}</title>");
    if let Some(prompt) = prompt {
        let _ = write!(svg, "<desc>{}</desc>", escape(prompt));
    }
    let _ = write!(
        svg,
        r##"<defs><linearGradient id="bg" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="{first}"/><stop offset="1" stop-color="{second}"/></linearGradient></defs><rect width="1024" height="1024" fill="url(#bg)"/><circle cx="870" cy="160" r="260" fill="{ink}" fill-opacity="0.08"/><circle cx="120" cy="910" r="210" fill="{ink}" fill-opacity="0.08"/><g font-family="Helvetica, Arial, sans-serif" fill="{ink}" text-anchor="middle">"##
    );
    if let Some(category) = &facts.category {
        let _ = write!(
            svg,
            r#"<text x="512" y="250" font-size="34" letter-spacing="6" fill-opacity="0.8">{}</text>"#,
            escape(&truncate(&category.to_uppercase(), 30))
        );
    }
    let top = 470 - (lines.len() as i32 - 1) * font_size / 2;
    for (i, line) in lines.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<text x="512" y="{}" font-size="{font_size}" font-weight="700">{}</text>"#,
            top + i as i32 * (font_size + 12),
            escape(line)
        );
    }
    if let Some(price) = &facts.price {
        let price = truncate(price, 20);
        let width = 120 + 36 * price.chars().count() as i32;
        let _ = write!(
            svg,
            r#"<rect x="{}" y="660" width="{width}" height="110" rx="55" fill="{ink}" fill-opacity="0.15"/><text x="512" y="737" font-size="64" font-weight="700">{}</text>"#,
            512 - width / 2,
            escape(&price)
        );
    }
    let tags: Vec<String> = facts.tags.iter().take(3).map(|t| hashtag(t)).collect();
    if !tags.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="512" y="900" font-size="32" fill-opacity="0.85">{}</text>"#,
            escape(&tags.join("  "))
        );
    }
    svg.push_str("</g></svg>");
    svg
}

/// The caption: the name, the first sentence of the description, the price, three hashtags.
pub fn caption(facts: &ProductFacts) -> String {
    let mut caption = format!("Meet {}", facts.name);
    if let Some(description) = &facts.description {
        let sentence = description
            .split_inclusive(['.', '!', '?'])
            .next()
            .unwrap_or(description)
            .trim()
            .trim_end_matches(['.', '!', '?']);
        let _ = write!(caption, ": {}", truncate(sentence, 160));
    }
    caption.push('.');
    if let Some(price) = &facts.price {
        let _ = write!(caption, " Yours for {price}.");
    }
    for tag in facts.tags.iter().take(3) {
        let _ = write!(caption, " {}", hashtag(tag));
    }
    truncate(&caption, crate::ai::max_caption_chars())
}

/// `#` and the tag's letters and digits.
fn hashtag(tag: &str) -> String {
    let word: String = tag.chars().filter(|c| c.is_alphanumeric()).collect();
    format!("#{word}")
}

/// The name in at most [`NAME_LINES`] lines of about [`NAME_LINE`] characters, by words.
fn wrap(name: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in name.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        // A word longer than a line is cut into line-sized pieces.
        while !word.is_empty() {
            let room = if current.is_empty() {
                NAME_LINE
            } else {
                NAME_LINE.saturating_sub(current.chars().count() + 1)
            };
            if word.len() <= room {
                if !current.is_empty() {
                    current.push(' ');
                }
                current.extend(word.drain(..));
            } else if current.is_empty() {
                current.extend(word.drain(..NAME_LINE));
            } else {
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    if lines.len() > NAME_LINES {
        lines.truncate(NAME_LINES);
        let last = &mut lines[NAME_LINES - 1];
        *last = format!("{}…", truncate(last, NAME_LINE - 1).trim_end_matches('…'));
    }
    lines
}

/// Text and attribute values for XML: the five special characters as entities, and the
/// characters XML 1.0 forbids (most control characters) left out, as they would make the
/// whole image unreadable.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || matches!(c, '\u{FFFE}' | '\u{FFFF}') => {}
            c => out.push(c),
        }
    }
    out
}

/// A colour of the name's own: the hue from a hash of it (FNV-1a), so a product keeps its
/// colour from one run to the next.
fn colour_from(name: &str) -> String {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let hue = (hash % 360) as f64;
    let (s, l) = (0.62, 0.46);
    let c = (1.0 - (2.0 * l - 1.0_f64).abs()) * s;
    let x = c * (1.0 - ((hue / 60.0) % 2.0 - 1.0).abs());
    let m = l - c / 2.0;
    let (r, g, b) = match hue as u32 / 60 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let byte = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    format!("#{:02X}{:02X}{:02X}", byte(r), byte(g), byte(b))
}

fn channels(hex: &str) -> [f64; 3] {
    let channel = |i: usize| {
        hex.get(1 + 2 * i..3 + 2 * i)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .map_or(0.0, |v| f64::from(v) / 255.0)
    };
    [channel(0), channel(1), channel(2)]
}

/// The colour scaled towards black by `factor` (0 black, 1 unchanged).
fn shade(hex: &str, factor: f64) -> String {
    let [r, g, b] = channels(hex).map(|c| (c * factor * 255.0).round() as u8);
    format!("#{r:02X}{g:02X}{b:02X}")
}

/// Relative luminance, 0 (black) to 1 (white).
fn luminance(hex: &str) -> f64 {
    let [r, g, b] = channels(hex);
    0.2126 * r + 0.7152 * g + 0.0722 * b
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::store::Fields;

    fn product(value: Value) -> Fields {
        match value {
            Value::Object(fields) => fields,
            _ => unreachable!(),
        }
    }

    async fn generate(product: &Fields, prompt: Option<&str>) -> AdCreative {
        OfflineProvider
            .generate(AdRequest { product, prompt })
            .await
            .expect("the offline provider never fails")
    }

    #[tokio::test]
    async fn it_is_deterministic() {
        let mug = product(json!({
            "name": "Sunrise Mug", "price": 12.5, "currency": "EUR",
            "colors": ["#FF8800", "#220044"], "tags": ["tea time", "gift"],
            "description": "Hand-thrown stoneware. Dishwasher safe.", "category": "Kitchen",
        }));
        let a = generate(&mug, Some("autumn mood")).await;
        let b = generate(&mug, Some("autumn mood")).await;
        assert_eq!(a, b);
        assert_eq!(a.image.kind, ImageKind::Svg);
        let svg = std::str::from_utf8(&a.image.bytes).unwrap();
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{svg}"
        );
        assert!(svg.ends_with("</svg>"));
        for part in [
            "Sunrise Mug",
            "€12.50",
            "#FF8800",
            "#220044",
            "KITCHEN",
            "#teatime",
            "autumn mood",
        ] {
            assert!(svg.contains(part), "{part} in {svg}");
        }
        assert_eq!(
            a.caption,
            "Meet Sunrise Mug: Hand-thrown stoneware. Yours for €12.50. #teatime #gift"
        );

        // Without colours, the name picks them, the same way every time.
        let plain = product(json!({"name": "Rye Bread"}));
        let c = generate(&plain, None).await;
        assert_eq!(c, generate(&plain, None).await);
        let other = generate(&product(json!({"name": "Roses"})), None).await;
        assert_ne!(c.image, other.image);
        assert_eq!(c.caption, "Meet Rye Bread.");
    }

    #[tokio::test]
    async fn text_is_escaped() {
        let hostile = product(json!({
            "name": "<script>alert(\"x\")</script> & 'Tom's' \u{1}",
            "category": "A&B", "tags": ["<b>"],
        }));
        let creative = generate(&hostile, Some("</desc><script>evil()</script>")).await;
        let svg = std::str::from_utf8(&creative.image.bytes).unwrap();
        assert!(!svg.contains("<script"), "{svg}");
        assert!(
            svg.contains("<desc>&lt;/desc&gt;&lt;script&gt;evil()&lt;/script&gt;</desc>"),
            "{svg}"
        );
        assert!(!svg.contains('\u{1}'));
        assert!(
            svg.contains(
                "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &apos;Tom&apos;s&apos;"
            ),
            "{svg}"
        );
        assert!(svg.contains("A&amp;B"), "{svg}");
        // Every `&` starts an entity, and the only tags are the ones the renderer wrote.
        for (i, _) in svg.match_indices('&') {
            let rest = &svg[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| rest.starts_with(e)),
                "bare & at {i}: {svg}"
            );
        }
        let tags: Vec<&str> = svg
            .split('<')
            .skip(1)
            .map(|t| t.split([' ', '>', '/']).next().unwrap_or_default())
            .filter(|t| !t.is_empty())
            .collect();
        for tag in tags {
            assert!(
                [
                    "svg",
                    "title",
                    "desc",
                    "defs",
                    "linearGradient",
                    "stop",
                    "rect",
                    "circle",
                    "g",
                    "text"
                ]
                .contains(&tag),
                "unexpected tag <{tag}>"
            );
        }
    }

    #[test]
    fn long_names_wrap_into_three_lines() {
        assert_eq!(wrap("Rye"), ["Rye"]);
        assert_eq!(
            wrap("A fairly long product name"),
            ["A fairly long", "product name"]
        );
        assert_eq!(
            wrap("Supercalifragilisticexpialidocious"),
            ["Supercalifragili", "sticexpialidocio", "us"]
        );
        let lines = wrap("one two three four five six seven eight nine ten eleven twelve");
        assert_eq!(lines.len(), 3);
        assert!(lines[2].ends_with('…'), "{lines:?}");
        assert!(lines.iter().all(|l| l.chars().count() <= NAME_LINE));
    }
}
