//! Firestore's REST value encoding: typed values (`{"stringValue": ...}`) to and from plain
//! JSON, documents with their `updateTime` as a [`Version`], field paths, commit answers.

use serde_json::{Map, Number, Value, json};

use super::shorten;
use crate::store::{Document, Fields, Version, Write};

/// The fields of `fields` that `mask` names; the others would be ignored by Firestore.
pub(super) fn masked(fields: &Fields, mask: &[String]) -> Fields {
    mask.iter()
        .filter_map(|name| fields.get(name).map(|v| (name.clone(), v.clone())))
        .collect()
}

/// A top-level field name as a Firestore field path: simple identifiers as they are,
/// anything else in backticks (with `` ` `` and `\` escaped), so a name with a dot is one
/// field, not a nested path.
pub fn quote_field_path(name: &str) -> String {
    let simple = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if simple {
        return name.to_owned();
    }
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('`');
    for c in name.chars() {
        if matches!(c, '`' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('`');
    quoted
}

/// A document resource (`{"name", "fields", "updateTime", ...}`) as a [`Document`].
pub(super) fn decode_document(doc: &Value) -> Result<Document, String> {
    let fields = match doc.get("fields") {
        None => Fields::new(),
        Some(Value::Object(fields)) => decode_fields(fields)?,
        Some(_) => return Err("document fields are not an object".into()),
    };
    let version = doc
        .get("updateTime")
        .and_then(Value::as_str)
        .and_then(Version::parse)
        .ok_or("the document has no valid updateTime")?;
    Ok(Document { fields, version })
}

/// Firestore `fields` (name to typed value) as plain JSON.
pub fn decode_fields(fields: &Map<String, Value>) -> Result<Fields, String> {
    fields
        .iter()
        .map(|(name, value)| Ok((name.clone(), decode_value(value)?)))
        .collect()
}

/// Plain JSON fields as Firestore `fields`.
pub fn encode_fields(fields: &Fields) -> Map<String, Value> {
    fields
        .iter()
        .map(|(name, value)| (name.clone(), encode_value(value)))
        .collect()
}

/// One JSON value as a Firestore `Value`.
pub fn encode_value(value: &Value) -> Value {
    match value {
        Value::Null => json!({ "nullValue": null }),
        Value::Bool(b) => json!({ "booleanValue": b }),
        // Firestore integers are int64 (sent as strings); a larger u64 can only be a double,
        // as the Admin SDK stores any number that is not a safe integer.
        Value::Number(n) => match n.as_i64() {
            Some(i) => json!({ "integerValue": i.to_string() }),
            None => json!({ "doubleValue": n.as_f64().unwrap_or_default() }),
        },
        Value::String(s) => json!({ "stringValue": s }),
        Value::Array(items) if items.is_empty() => json!({ "arrayValue": {} }),
        Value::Array(items) => {
            json!({ "arrayValue": { "values": items.iter().map(encode_value).collect::<Vec<_>>() } })
        }
        Value::Object(map) if map.is_empty() => json!({ "mapValue": {} }),
        Value::Object(map) => json!({ "mapValue": { "fields": encode_fields(map) } }),
    }
}

/// One Firestore `Value` as JSON. Timestamps, references and bytes (base64) come back as
/// their strings, geo points as `{latitude, longitude}`.
pub fn decode_value(value: &Value) -> Result<Value, String> {
    let typed = value
        .as_object()
        .and_then(|o| o.iter().next())
        .ok_or_else(|| "a Firestore value is not a typed object".to_owned())?;
    Ok(match (typed.0.as_str(), typed.1) {
        ("nullValue", _) => Value::Null,
        ("booleanValue", Value::Bool(b)) => Value::Bool(*b),
        ("integerValue", Value::String(s)) => s
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("integerValue `{}` is not an int64", shorten(s)))?,
        ("integerValue", Value::Number(n)) => Value::Number(n.clone()),
        // NaN and the infinities are strings in JSON; JSON has no such numbers, so null.
        ("doubleValue", Value::Number(n)) => n
            .as_f64()
            .and_then(Number::from_f64)
            .map_or(Value::Null, Value::Number),
        ("doubleValue", Value::String(_)) => Value::Null,
        ("stringValue" | "timestampValue" | "referenceValue" | "bytesValue", Value::String(s)) => {
            Value::String(s.clone())
        }
        ("geoPointValue", Value::Object(point)) => {
            let coordinate = |k: &str| point.get(k).cloned().unwrap_or(json!(0.0));
            json!({ "latitude": coordinate("latitude"), "longitude": coordinate("longitude") })
        }
        ("arrayValue", Value::Object(array)) => match array.get("values") {
            None => Value::Array(Vec::new()),
            Some(Value::Array(items)) => {
                Value::Array(items.iter().map(decode_value).collect::<Result<_, _>>()?)
            }
            Some(_) => return Err("arrayValue.values is not a list".into()),
        },
        ("mapValue", Value::Object(map)) => match map.get("fields") {
            None => Value::Object(Map::new()),
            Some(Value::Object(fields)) => Value::Object(decode_fields(fields)?),
            Some(_) => return Err("mapValue.fields is not an object".into()),
        },
        (kind, _) => return Err(format!("unexpected Firestore value `{}`", shorten(kind))),
    })
}

/// The version each write of a commit left: `writeResults[i].updateTime` (none for a delete).
pub(super) fn commit_versions(
    answer: &Value,
    writes: &[Write],
) -> Result<Vec<Option<Version>>, String> {
    let results = answer
        .get("writeResults")
        .and_then(Value::as_array)
        .ok_or("the commit answer has no writeResults")?;
    if results.len() != writes.len() {
        return Err("the commit answer has the wrong number of writeResults".into());
    }
    writes
        .iter()
        .zip(results)
        .map(|(write, result)| match write {
            Write::Delete { .. } => Ok(None),
            _ => result
                .get("updateTime")
                .and_then(Value::as_str)
                .and_then(Version::parse)
                .map(Some)
                .ok_or_else(|| "a write result has no updateTime".to_owned()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_through_firestore_values() {
        let doc = json!({
            "s": "text", "t": true, "f": false, "n": null,
            "i": 42, "neg": -7, "big": i64::MAX, "d": 1.5, "whole": 2.0,
            "empty_list": [], "list": [1, "two", {"three": 3}],
            "empty_map": {}, "map": {"a": {"b": [true, null]}, "with.dot": "x"},
        });
        let Value::Object(fields) = doc else {
            panic!("object")
        };
        let encoded = encode_fields(&fields);
        assert_eq!(encoded["i"], json!({"integerValue": "42"}));
        assert_eq!(encoded["d"], json!({"doubleValue": 1.5}));
        assert_eq!(encoded["whole"], json!({"doubleValue": 2.0}));
        assert_eq!(encoded["empty_list"], json!({"arrayValue": {}}));
        assert_eq!(encoded["empty_map"], json!({"mapValue": {}}));
        assert_eq!(encoded["n"], json!({"nullValue": null}));
        // Through text, as it travels.
        let wire: Map<String, Value> =
            serde_json::from_str(&serde_json::to_string(&encoded).expect("ser")).expect("de");
        assert_eq!(decode_fields(&wire).expect("decode"), fields);
    }

    #[test]
    fn decodes_what_firestore_sends() {
        let wire = json!({
            "i": {"integerValue": "9007199254740993"},
            "ts": {"timestampValue": "2024-01-02T03:04:05.123456Z"},
            "empty_map": {"mapValue": {"fields": {}}},
            "empty_list": {"arrayValue": {"values": []}},
            "nan": {"doubleValue": "NaN"},
            "geo": {"geoPointValue": {"latitude": 1.5, "longitude": -2.0}},
        });
        let Value::Object(wire) = wire else {
            panic!("object")
        };
        let fields = decode_fields(&wire).expect("decode");
        assert_eq!(fields["i"], json!(9_007_199_254_740_993_i64));
        assert_eq!(fields["ts"], json!("2024-01-02T03:04:05.123456Z"));
        assert_eq!(fields["empty_map"], json!({}));
        assert_eq!(fields["empty_list"], json!([]));
        assert_eq!(fields["nan"], Value::Null);
        assert_eq!(fields["geo"], json!({"latitude": 1.5, "longitude": -2.0}));

        let bad = json!({"x": {"integerValue": "12abc"}});
        assert!(decode_fields(bad.as_object().expect("object")).is_err());
        let bad = json!({"x": "not typed"});
        assert!(decode_fields(bad.as_object().expect("object")).is_err());
    }

    #[test]
    fn a_huge_unsigned_number_becomes_a_double() {
        assert_eq!(
            encode_value(&json!(u64::MAX)),
            json!({"doubleValue": u64::MAX as f64})
        );
    }

    #[test]
    fn field_paths_are_quoted_unless_simple() {
        assert_eq!(quote_field_path("name"), "name");
        assert_eq!(quote_field_path("_a1"), "_a1");
        assert_eq!(quote_field_path("createdAt"), "createdAt");
        assert_eq!(quote_field_path("1st"), "`1st`");
        assert_eq!(quote_field_path("a.b"), "`a.b`");
        assert_eq!(quote_field_path("a-b c"), "`a-b c`");
        assert_eq!(quote_field_path("back`tick\\"), "`back\\`tick\\\\`");
        assert_eq!(quote_field_path(""), "``");
    }
}
