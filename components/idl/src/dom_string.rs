//! WebIDL's conversion of a JavaScript value to `DOMString`, for engines that generate their own
//! bindings.

use crate::BindingError;

/// A JavaScript value as a binding sees it before conversion.
#[derive(Debug, Clone, PartialEq)]
pub enum IdlValue {
    /// `undefined`.
    Undefined,
    /// `null`.
    Null,
    /// A boolean.
    Boolean(bool),
    /// A Number.
    Number(f64),
    /// A BigInt, as its decimal digits (with a leading `-` if negative).
    BigInt(String),
    /// A String, as UTF-16 code units (lone surrogates included).
    String(Vec<u16>),
    /// A Symbol.
    Symbol,
    /// An object; converting it needs the engine's ToPrimitive.
    Object,
}

/// [Converted to a DOMString](https://webidl.spec.whatwg.org/#js-DOMString): ECMAScript
/// [ToString](https://tc39.es/ecma262/#sec-tostring). `to_primitive` is the engine's
/// ToPrimitive(value, string), called only for objects.
pub fn to_dom_string(
    value: IdlValue,
    to_primitive: impl FnOnce() -> Result<IdlValue, BindingError>,
) -> Result<Vec<u16>, BindingError> {
    // WebIDL 1. (No [LegacyNullToEmptyString] here.) 2. Let x be ? ToString(V).
    // 3. Return the IDL DOMString value that represents the same sequence of code units.
    match value {
        // ToString 9-10: an Object is first converted with ToPrimitive(argument, string).
        IdlValue::Object => primitive_to_string(to_primitive()?),
        v => primitive_to_string(v),
    }
}

/// ECMAScript [ToString](https://tc39.es/ecma262/#sec-tostring) of a primitive.
fn primitive_to_string(value: IdlValue) -> Result<Vec<u16>, BindingError> {
    let text = match value {
        // 1. If argument is a String, return argument.
        IdlValue::String(units) => return Ok(units),
        // 2. If argument is a Symbol, throw a TypeError.
        IdlValue::Symbol => {
            return Err(BindingError::Type(
                "Cannot convert a Symbol value to a string".to_owned(),
            ))
        }
        // 3-6. undefined, null, true, false.
        IdlValue::Undefined => "undefined".to_owned(),
        IdlValue::Null => "null".to_owned(),
        IdlValue::Boolean(b) => b.to_string(),
        // 7. Number::toString(argument, 10).
        IdlValue::Number(x) => number_to_string(x),
        // 8. BigInt::toString(argument, 10).
        IdlValue::BigInt(digits) => digits,
        // ToPrimitive never yields an object; an engine that does is refused.
        IdlValue::Object => {
            return Err(BindingError::Type(
                "Cannot convert object to primitive value".to_owned(),
            ))
        }
    };
    Ok(text.encode_utf16().collect())
}

/// [Number::toString(x, 10)](https://tc39.es/ecma262/#sec-numeric-types-number-tostring).
pub fn number_to_string(x: f64) -> String {
    // 1. If x is NaN, return "NaN". 2. If x is +0 or -0, return "0".
    if x.is_nan() {
        return "NaN".to_owned();
    }
    if x == 0.0 {
        return "0".to_owned();
    }
    // 3. If x < 0, return "-" followed by Number::toString(-x).
    if x < 0.0 {
        return format!("-{}", number_to_string(-x));
    }
    // 4. If x is +Infinity, return "Infinity".
    if x.is_infinite() {
        return "Infinity".to_owned();
    }
    // 5. Let n, k and s be integers such that k ≥ 1, 10^(k-1) ≤ s < 10^k, s × 10^(n-k) is x,
    //    and k is as small as possible. Rust's `{:e}` gives exactly these shortest digits.
    let sci = format!("{x:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = digits.len() as i64;
    let n = exponent.parse::<i64>().unwrap_or(0) + 1;
    if k <= n && n <= 21 {
        // 6. The k digits followed by n-k zeros.
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        // 7. The first n digits, a point, the remaining k-n digits.
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        // 8. "0.", -n zeros, the k digits.
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        // 9-10. Exponential notation: d[.ddd]e±(n-1).
        let e = n - 1;
        let sign = if e < 0 { '-' } else { '+' };
        let (first, rest) = digits.split_at(1);
        if rest.is_empty() {
            format!("{first}e{sign}{}", e.abs())
        } else {
            format!("{first}.{rest}e{sign}{}", e.abs())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: IdlValue) -> String {
        String::from_utf16(&to_dom_string(v, || Ok(IdlValue::Null)).unwrap()).unwrap()
    }

    #[test]
    fn numbers_print_as_ecmascript_prints_them() {
        let cases = [
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (1.5, "1.5"),
            (-0.1, "-0.1"),
            (0.000001, "0.000001"),
            (1e-7, "1e-7"),
            (1e21, "1e+21"),
            (123456789012345680000.0, "123456789012345680000"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (100.0, "100"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1.2345e-7, "1.2345e-7"),
            (42.0, "42"),
        ];
        for (x, want) in cases {
            assert_eq!(number_to_string(x), want, "{x:e}");
        }
    }

    #[test]
    fn primitives_convert_and_symbols_refuse() {
        assert_eq!(s(IdlValue::Undefined), "undefined");
        assert_eq!(s(IdlValue::Null), "null");
        assert_eq!(s(IdlValue::Boolean(true)), "true");
        assert_eq!(s(IdlValue::Number(42.0)), "42");
        assert_eq!(s(IdlValue::BigInt("-12".into())), "-12");
        let err = to_dom_string(IdlValue::Symbol, || Ok(IdlValue::Null)).unwrap_err();
        assert_eq!(err.name(), "TypeError");
    }

    #[test]
    fn strings_keep_lone_surrogates() {
        let units = vec![0xD800, 0x61, 0xDC00];
        assert_eq!(
            to_dom_string(IdlValue::String(units.clone()), || Ok(IdlValue::Null)).unwrap(),
            units
        );
    }

    #[test]
    fn objects_go_through_to_primitive() {
        let got = to_dom_string(IdlValue::Object, || {
            Ok(IdlValue::String("converted".encode_utf16().collect()))
        })
        .unwrap();
        assert_eq!(String::from_utf16(&got).unwrap(), "converted");
        let sym = to_dom_string(IdlValue::Object, || Ok(IdlValue::Symbol)).unwrap_err();
        assert_eq!(sym.name(), "TypeError");
        let thrown = to_dom_string(IdlValue::Object, || {
            Err(BindingError::Type("toString threw".into()))
        })
        .unwrap_err();
        assert_eq!(thrown.to_string(), "TypeError: toString threw");
    }
}
