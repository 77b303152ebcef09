//! Per-call cost: what a quantity of use costs under a provider's
//! [`Pricing`], in micro-USD (millionths of a dollar) so that sums are exact.

use dialtone_crds::provider::Pricing;

/// One quantity of use of one provider.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Usage {
    /// Call time on the telephony provider, in minutes (as the caller
    /// counts them: Twilio bills started minutes).
    TelephonyMinutes(f64),
    /// Audio sent to speech to text, in seconds.
    SttSeconds(f64),
    /// Characters synthesised by text to speech.
    TtsCharacters(u64),
    /// Prompt tokens of the language model.
    LlmInputTokens(u64),
    /// Completion tokens of the language model.
    LlmOutputTokens(u64),
}

impl Usage {
    /// The `component` of a `costAccrued` event: `telephony`, `stt`, `tts`
    /// or `llm`.
    pub fn component(&self) -> &'static str {
        match self {
            Usage::TelephonyMinutes(_) => "telephony",
            Usage::SttSeconds(_) => "stt",
            Usage::TtsCharacters(_) => "tts",
            Usage::LlmInputTokens(_) | Usage::LlmOutputTokens(_) => "llm",
        }
    }

    /// The `unit` of a `costAccrued` event: `minutes`, `seconds`,
    /// `characters`, `inputTokens` or `outputTokens`.
    pub fn unit(&self) -> &'static str {
        match self {
            Usage::TelephonyMinutes(_) => "minutes",
            Usage::SttSeconds(_) => "seconds",
            Usage::TtsCharacters(_) => "characters",
            Usage::LlmInputTokens(_) => "inputTokens",
            Usage::LlmOutputTokens(_) => "outputTokens",
        }
    }

    /// The `quantity` of a `costAccrued` event, in [`unit`](Self::unit)s.
    pub fn quantity(&self) -> f64 {
        match *self {
            Usage::TelephonyMinutes(q) | Usage::SttSeconds(q) => q,
            Usage::TtsCharacters(n) | Usage::LlmInputTokens(n) | Usage::LlmOutputTokens(n) => {
                n as f64
            }
        }
    }
}

/// What `usage` costs under `pricing`, in micro-USD, rounded half away from
/// zero. A price that is not set costs nothing.
pub fn micro_usd(pricing: &Pricing, usage: Usage) -> i64 {
    let (price, per_units) = match usage {
        Usage::TelephonyMinutes(_) => (pricing.per_minute_usd, 1.0),
        Usage::SttSeconds(_) => (pricing.per_second_usd, 1.0),
        Usage::TtsCharacters(_) => (pricing.per_thousand_characters_usd, 1_000.0),
        Usage::LlmInputTokens(_) => (pricing.per_million_input_tokens_usd, 1_000_000.0),
        Usage::LlmOutputTokens(_) => (pricing.per_million_output_tokens_usd, 1_000_000.0),
    };
    let Some(price) = price else {
        return 0;
    };
    round_half_away_from_zero(price * 1_000_000.0 * usage.quantity() / per_units)
}

/// Rounds to the nearest integer, halves away from zero. Prices are
/// decimals written in specs, so binary floating point lands a hair off
/// exact halves (0.0000005 × 10⁶ is 0.49999999999999994); rounding to a
/// millionth first removes that noise, far below a micro-dollar.
pub fn round_half_away_from_zero(micro: f64) -> i64 {
    if !micro.is_finite() {
        return 0;
    }
    let denoised = (micro * 1_000_000.0).round() / 1_000_000.0;
    // f64::round rounds halves away from zero; `as` saturates at i64's
    // bounds.
    denoised.round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pricing() -> Pricing {
        Pricing {
            per_minute_usd: Some(0.0085),
            per_second_usd: Some(0.0077 / 60.0),
            per_thousand_characters_usd: Some(0.18),
            per_million_input_tokens_usd: Some(0.15),
            per_million_output_tokens_usd: Some(0.60),
            per_request_usd: None,
        }
    }

    #[test]
    fn each_component_uses_its_own_price_and_unit() {
        let p = pricing();
        assert_eq!(micro_usd(&p, Usage::TelephonyMinutes(3.0)), 25_500);
        // 90 s at $0.0077/min = $0.01155.
        assert_eq!(micro_usd(&p, Usage::SttSeconds(90.0)), 11_550);
        // 250 characters at $0.18 per thousand = $0.045.
        assert_eq!(micro_usd(&p, Usage::TtsCharacters(250)), 45_000);
        // 1,200 input tokens at $0.15 per million = $0.00018.
        assert_eq!(micro_usd(&p, Usage::LlmInputTokens(1_200)), 180);
        assert_eq!(micro_usd(&p, Usage::LlmOutputTokens(5)), 3);
    }

    #[test]
    fn unset_prices_and_zero_use_cost_nothing() {
        let p = Pricing::default();
        assert_eq!(micro_usd(&p, Usage::TelephonyMinutes(10.0)), 0);
        assert_eq!(micro_usd(&pricing(), Usage::TtsCharacters(0)), 0);
    }

    #[test]
    fn halves_round_away_from_zero() {
        assert_eq!(round_half_away_from_zero(2.5), 3);
        assert_eq!(round_half_away_from_zero(-2.5), -3);
        assert_eq!(round_half_away_from_zero(2.4999), 2);
        assert_eq!(round_half_away_from_zero(-2.4999), -2);
        assert_eq!(round_half_away_from_zero(f64::NAN), 0);
        // Exactly half a micro-dollar, despite 0.0000005 not being exact
        // in binary.
        let p = Pricing {
            per_second_usd: Some(0.000_000_5),
            ..Pricing::default()
        };
        assert_eq!(micro_usd(&p, Usage::SttSeconds(1.0)), 1);
        assert_eq!(micro_usd(&p, Usage::SttSeconds(3.0)), 2);
        // 5 output tokens at $0.60 per million = 3 micro-dollars exactly;
        // 1 token = 0.6 → 1.
        let p = pricing();
        assert_eq!(micro_usd(&p, Usage::LlmOutputTokens(1)), 1);
    }

    #[test]
    fn events_get_component_unit_and_quantity() {
        let u = Usage::LlmInputTokens(42);
        assert_eq!(
            (u.component(), u.unit(), u.quantity()),
            ("llm", "inputTokens", 42.0)
        );
        let u = Usage::TelephonyMinutes(1.5);
        assert_eq!(
            (u.component(), u.unit(), u.quantity()),
            ("telephony", "minutes", 1.5)
        );
        assert_eq!(Usage::SttSeconds(2.0).unit(), "seconds");
        assert_eq!(Usage::TtsCharacters(7).component(), "tts");
        assert_eq!(Usage::LlmOutputTokens(7).unit(), "outputTokens");
    }
}
