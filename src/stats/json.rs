//! JSON summary of a ns histogram, carrying the lossless V2+DEFLATE blob so
//! that a reader can rebuild and merge the exact histogram.
//!
//! It does not define the surrounding report document; callers embed the
//! value wherever their JSON output needs a histogram.

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use super::{from_base64, to_base64_v2_deflate};

/// Key of the lossless histogram blob in [`hist_json`] objects.
pub const JSON_BLOB_KEY: &str = "hdr_v2_deflate_base64";

/// Percentiles reported by [`hist_json`]: (JSON key, quantile).
const JSON_PERCENTILES: [(&str, f64); 7] = [
    ("50", 0.5),
    ("75", 0.75),
    ("90", 0.9),
    ("99", 0.99),
    ("99.9", 0.999),
    ("99.99", 0.9999),
    ("100", 1.0),
];

/// `h` (values in ns) as
///
/// ```json
/// {"unit":"ns","count":1000,"min":812,"max":90111,"mean":1520.3,"stdev":803.1,
///  "percentiles":{"50":1403,"75":..,"90":..,"99":..,"99.9":..,"99.99":..,"100":90111},
///  "hdr_v2_deflate_base64":"HISTFAAAA..."}
/// ```
///
/// `count` is the sample count; `min`, `max` and the percentiles are integer
/// ns as HdrHistogram reports them (lowest equivalent for `min`, highest
/// equivalent for the others); `mean` and `stdev` are float ns. All are 0 for
/// an empty histogram. The blob is [`to_base64_v2_deflate`].
pub fn hist_json(h: &Histogram<u64>) -> Value {
    let empty = h.is_empty();
    let mut pct = Map::new();
    for (key, q) in JSON_PERCENTILES {
        let v = if empty { 0 } else { h.value_at_quantile(q) };
        pct.insert(key.to_string(), json!(v));
    }
    json!({
        "unit": "ns",
        "count": h.len(),
        "min": if empty { 0 } else { h.min() },
        "max": if empty { 0 } else { h.max() },
        "mean": h.mean(),
        "stdev": h.stdev(),
        "percentiles": Value::Object(pct),
        JSON_BLOB_KEY: to_base64_v2_deflate(h),
    })
}

/// Rebuild the histogram from a [`hist_json`] object's
/// `hdr_v2_deflate_base64` blob (the other fields are derived and ignored).
/// Errors: `v` is not an object with a string blob, the blob does not decode,
/// or `unit` is present and not `"ns"`.
pub fn hist_from_json(v: &Value) -> Result<Histogram<u64>, String> {
    let obj = v.as_object().ok_or("histogram JSON: expected an object")?;
    if let Some(unit) = obj.get("unit") {
        if unit.as_str() != Some("ns") {
            return Err(format!("histogram JSON: unit {unit} is not \"ns\""));
        }
    }
    let blob = obj
        .get(JSON_BLOB_KEY)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("histogram JSON: missing string field {JSON_BLOB_KEY:?}"))?;
    from_base64(blob)
}
