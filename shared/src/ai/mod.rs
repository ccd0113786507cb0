//! The AI provider port: an ad image and a caption for a product. An OpenAI-compatible API
//! in the cloud, a deterministic offline provider locally and in tests.

pub mod offline;
pub mod openai;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::AppError;
use crate::images::Image;
use crate::store::Fields;

/// What a provider is asked for: the product as stored, and the user's optional prompt.
#[derive(Clone, Copy, Debug)]
pub struct AdRequest<'a> {
    /// The product document, as read after the generation lock was taken.
    pub product: &'a Fields,
    /// The user's direction, if any (at most 1,000 characters).
    pub prompt: Option<&'a str>,
}

/// What a provider makes.
#[derive(Clone, Debug, PartialEq)]
pub struct AdCreative {
    /// The ad image, its format checked by its bytes.
    pub image: Image,
    /// The caption, at most 2,200 characters.
    pub caption: String,
}

/// Why a provider made nothing. The message is safe to show (and to store in the product's
/// `error`): it never holds a key.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum AiError {
    /// The provider answered with an error or with something unusable (502).
    #[error("{0}")]
    Failed(String),
    /// The provider did not answer within the budget (504).
    #[error("{0}")]
    TimedOut(String),
}

impl From<AiError> for AppError {
    fn from(err: AiError) -> Self {
        match err {
            AiError::Failed(message) => AppError::BadGateway(message),
            AiError::TimedOut(message) => AppError::GatewayTimeout(message),
        }
    }
}

/// Makes ad images and captions.
#[async_trait]
pub trait AiProvider: Send + Sync {
    /// An ad image and a caption for `request.product`.
    async fn generate(&self, request: AdRequest<'_>) -> Result<AdCreative, AiError>;

    /// Opens connections ahead of the first request; never fails (the first request retries).
    async fn warm_up(&self) {}
}

/// Longest product description that goes into a prompt.
const MAX_DESCRIPTION_IN_PROMPT: usize = 1000;

/// The product fields a prompt or an offline ad is made from, read leniently: a field with
/// an unexpected type is left out rather than failing the generation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProductFacts {
    /// The name (a placeholder if the product has none).
    pub name: String,
    /// The description, cut to 1,000 characters.
    pub description: Option<String>,
    /// The category.
    pub category: Option<String>,
    /// The price with its currency, e.g. `€12.50` or `30 CHF`.
    pub price: Option<String>,
    /// `#RRGGBB` colours only.
    pub colors: Vec<String>,
    /// The tags.
    pub tags: Vec<String>,
}

impl ProductFacts {
    /// Reads the facts of a stored product.
    pub fn of(product: &Fields) -> Self {
        let text = |key: &str| {
            product
                .get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let strings = |key: &str| -> Vec<String> {
            product
                .get(key)
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let price = product
            .get("price")
            .and_then(Value::as_f64)
            .map(|amount| format_price(amount, product.get("currency").and_then(Value::as_str)));
        Self {
            name: text("name").unwrap_or_else(|| "Our product".to_owned()),
            description: text("description").map(|d| truncate(&d, MAX_DESCRIPTION_IN_PROMPT)),
            category: text("category"),
            price,
            colors: strings("colors")
                .into_iter()
                .filter(|c| crate::domain::is_hex_colour(c))
                .collect(),
            tags: strings("tags"),
        }
    }
}

/// `€12.50`, `$3`, `30 CHF`, `12.5`: whole amounts without decimals, others with two.
pub fn format_price(amount: f64, currency: Option<&str>) -> String {
    let number = if amount.fract() == 0.0 {
        format!("{amount:.0}")
    } else {
        format!("{amount:.2}")
    };
    match currency {
        Some("USD") => format!("${number}"),
        Some("EUR") => format!("€{number}"),
        Some("GBP") => format!("£{number}"),
        Some(code) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) => {
            format!("{number} {code}")
        }
        _ => number,
    }
}

/// The longest caption a product can hold (its field table's limit).
pub fn max_caption_chars() -> usize {
    crate::domain::max_chars(crate::domain::Resource::Product, "caption")
}

/// At most `max` characters, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn facts_are_read_leniently() {
        let Value::Object(product) = json!({
            "name": " Mug ", "price": 12.5, "currency": "EUR", "colors": ["#112233", "red", 3],
            "tags": ["tea", 1], "description": "", "category": 7,
        }) else {
            unreachable!()
        };
        let facts = ProductFacts::of(&product);
        assert_eq!(facts.name, "Mug");
        assert_eq!(facts.price.as_deref(), Some("€12.50"));
        assert_eq!(facts.colors, ["#112233"]);
        assert_eq!(facts.tags, ["tea"]);
        assert_eq!(facts.description, None);
        assert_eq!(facts.category, None);
        assert_eq!(ProductFacts::of(&Fields::new()).name, "Our product");
    }

    #[test]
    fn prices_and_truncation() {
        assert_eq!(format_price(3.0, Some("USD")), "$3");
        assert_eq!(format_price(30.0, Some("CHF")), "30 CHF");
        assert_eq!(format_price(0.5, None), "0.50");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }

    #[test]
    fn errors_map_to_gateway_statuses() {
        assert_eq!(AppError::from(AiError::Failed("x".into())).status(), 502);
        assert_eq!(AppError::from(AiError::TimedOut("x".into())).status(), 504);
    }
}
