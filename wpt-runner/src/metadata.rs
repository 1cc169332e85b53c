//! wptrunner's expectation metadata: one `.ini` file beside each test path under a metadata
//! directory (`DIR/background-sync/retry.https.window.js.ini`), with a section per test
//! (`[retry.https.window.html]`) and a subsection per subtest, holding `expected:` (one status,
//! or a list for a known-flaky result), `disabled:` and `bug:`. A value may be conditional on
//! the run: indented `if os == "linux": FAIL` lines, then a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One test's expectations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestMeta {
    /// The test statuses expected (the first is the expected one, others intermittent);
    /// empty: `OK`.
    pub expected: Vec<String>,
    /// Subtest statuses expected, by name; a subtest not here is expected to `PASS`.
    pub subtests: BTreeMap<String, Vec<String>>,
    /// Why the test is not run, if it is disabled.
    pub disabled: Option<String>,
}

impl TestMeta {
    /// The statuses allowed for the test itself.
    pub fn allowed(&self) -> Vec<String> {
        if self.expected.is_empty() {
            vec!["OK".to_owned()]
        } else {
            self.expected.clone()
        }
    }

    /// The statuses allowed for `subtest`.
    pub fn allowed_subtest(&self, subtest: &str) -> Vec<String> {
        self.subtests
            .get(subtest)
            .filter(|v| !v.is_empty())
            .cloned()
            .unwrap_or_else(|| vec!["PASS".to_owned()])
    }
}

/// The `.ini` file of the test whose URL path is `url_path` (`/a/b.https.window.js`).
pub fn ini_path(dir: &Path, url_path: &str) -> PathBuf {
    dir.join(format!("{}.ini", url_path.trim_start_matches('/')))
}

/// The section name of test `id` (`/a/b.https.window.html` → `b.https.window.html`).
pub fn section_name(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

/// Reads `text` (one `.ini` file), evaluating conditions against `run_info`: the tests it
/// describes, by section name.
pub fn parse(text: &str, run_info: &Value) -> Result<BTreeMap<String, TestMeta>, String> {
    // (indent, content) of each meaningful line.
    let lines: Vec<(usize, &str)> = text
        .lines()
        .map(|l| (l.len() - l.trim_start().len(), strip_comment(l).trim_end()))
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i, l.trim_start()))
        .collect();
    let mut tests: BTreeMap<String, TestMeta> = BTreeMap::new();
    let mut test: Option<String> = None;
    let mut subtest: Option<String> = None;
    let mut i = 0;
    while i < lines.len() {
        let (indent, line) = lines[i];
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = unescape(name);
            if indent == 0 {
                tests.entry(name.clone()).or_default();
                test = Some(name);
                subtest = None;
            } else {
                let t = test
                    .as_ref()
                    .ok_or("a subtest section outside a test section")?;
                tests
                    .get_mut(t)
                    .ok_or("no test")?
                    .subtests
                    .entry(name.clone())
                    .or_default();
                subtest = Some(name);
            }
            i += 1;
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| format!("line {}: expected `key: value` or `[section]`", i + 1))?;
        let (key, value) = (key.trim(), value.trim());
        // A conditional value: the indented lines below, `if COND: VALUE`, then a default.
        let resolved = if value.is_empty() {
            let mut chosen: Option<String> = None;
            let mut j = i + 1;
            while j < lines.len() && lines[j].0 > indent {
                let l = lines[j].1;
                if let Some(rest) = l.strip_prefix("if ") {
                    let (cond, v) = split_condition(rest)
                        .ok_or_else(|| format!("line {}: `if CONDITION: VALUE`", j + 1))?;
                    if chosen.is_none() && eval(cond, run_info)? {
                        chosen = Some(v.to_owned());
                    }
                } else if chosen.is_none() {
                    chosen = Some(l.to_owned());
                }
                j += 1;
            }
            i = j;
            chosen
        } else {
            i += 1;
            Some(value.to_owned())
        };
        let Some(value) = resolved else { continue };
        let t = test.as_ref().ok_or("a key outside a test section")?;
        let meta = tests.get_mut(t).ok_or("no test")?;
        match (key, &subtest) {
            ("expected", None) => meta.expected = list(&value),
            ("expected", Some(s)) => {
                meta.subtests.insert(s.clone(), list(&value));
            }
            ("disabled", None) if !matches!(value.as_str(), "false" | "@False") => {
                meta.disabled = Some(value);
            }
            // `bug:` and other keys are for people; they change nothing here.
            _ => {}
        }
    }
    Ok(tests)
}

fn strip_comment(line: &str) -> &str {
    let mut in_string = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_string = !in_string,
            '#' if !in_string => return &line[..i],
            _ => {}
        }
    }
    line
}

fn unescape(s: &str) -> String {
    s.replace("\\]", "]").replace("\\\\", "\\")
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace(']', "\\]")
}

/// `[PASS, FAIL]` or `FAIL`.
fn list(value: &str) -> Vec<String> {
    let v = value.trim();
    match v.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        Some(inner) => inner
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        None => vec![v.trim_matches('"').to_owned()],
    }
}

/// `COND: VALUE`, the colon outside quotes.
fn split_condition(s: &str) -> Option<(&str, &str)> {
    let mut in_string = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_string = !in_string,
            ':' if !in_string => return Some((s[..i].trim(), s[i + 1..].trim())),
            _ => {}
        }
    }
    None
}

/// Evaluates a wptmanifest condition (`os == "linux" and not debug`, `bits != 32 or
/// (product == "bgsync")`) against `run_info`.
pub fn eval(cond: &str, run_info: &Value) -> Result<bool, String> {
    let tokens = tokenize(cond)?;
    let mut p = Parser {
        tokens: &tokens,
        at: 0,
        run_info,
    };
    let v = p.or()?;
    if p.at != tokens.len() {
        return Err(format!("condition {cond:?}: unexpected {:?}", tokens[p.at]));
    }
    Ok(truthy(&v))
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Str(String),
    Num(f64),
    Op(&'static str),
    Open,
    Close,
}

fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => i += 1,
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            '"' | '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|x| *x == c)
                    .ok_or_else(|| format!("condition {s:?}: an unclosed string"))?;
                out.push(Token::Str(chars[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
            }
            '=' | '!' if chars.get(i + 1) == Some(&'=') => {
                out.push(Token::Op(if c == '=' { "==" } else { "!=" }));
                i += 2;
            }
            c if c.is_ascii_digit() => {
                let end = chars[i..]
                    .iter()
                    .position(|x| !(x.is_ascii_digit() || *x == '.'))
                    .map_or(chars.len(), |p| i + p);
                let n: String = chars[i..end].iter().collect();
                out.push(Token::Num(
                    n.parse()
                        .map_err(|_| format!("condition {s:?}: bad number {n}"))?,
                ));
                i = end;
            }
            c if c.is_alphabetic() || c == '_' => {
                let end = chars[i..]
                    .iter()
                    .position(|x| !(x.is_alphanumeric() || *x == '_' || *x == '.'))
                    .map_or(chars.len(), |p| i + p);
                let w: String = chars[i..end].iter().collect();
                out.push(match w.as_str() {
                    "and" => Token::Op("and"),
                    "or" => Token::Op("or"),
                    "not" => Token::Op("not"),
                    _ => Token::Name(w),
                });
                i = end;
            }
            c => return Err(format!("condition {s:?}: unexpected {c:?}")),
        }
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    run_info: &'a Value,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn or(&mut self) -> Result<Value, String> {
        let mut v = self.and()?;
        while self.peek() == Some(&Token::Op("or")) {
            self.at += 1;
            let r = self.and()?;
            v = Value::Bool(truthy(&v) || truthy(&r));
        }
        Ok(v)
    }

    fn and(&mut self) -> Result<Value, String> {
        let mut v = self.not()?;
        while self.peek() == Some(&Token::Op("and")) {
            self.at += 1;
            let r = self.not()?;
            v = Value::Bool(truthy(&v) && truthy(&r));
        }
        Ok(v)
    }

    fn not(&mut self) -> Result<Value, String> {
        if self.peek() == Some(&Token::Op("not")) {
            self.at += 1;
            return Ok(Value::Bool(!truthy(&self.not()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Value, String> {
        let left = self.atom()?;
        match self.peek() {
            Some(Token::Op(op @ ("==" | "!="))) => {
                let op = *op;
                self.at += 1;
                let right = self.atom()?;
                let equal = same(&left, &right);
                Ok(Value::Bool(if op == "==" { equal } else { !equal }))
            }
            _ => Ok(left),
        }
    }

    fn atom(&mut self) -> Result<Value, String> {
        let t = self.peek().cloned().ok_or("a condition ends too soon")?;
        self.at += 1;
        match t {
            Token::Open => {
                let v = self.or()?;
                if self.peek() != Some(&Token::Close) {
                    return Err("a `(` without its `)`".into());
                }
                self.at += 1;
                Ok(v)
            }
            Token::Str(s) => Ok(Value::String(s)),
            Token::Num(n) => Ok(serde_json::json!(n)),
            Token::Name(n) => Ok(match n.as_str() {
                "true" | "True" => Value::Bool(true),
                "false" | "False" => Value::Bool(false),
                _ => self.run_info.get(&n).cloned().unwrap_or(Value::Null),
            }),
            t => Err(format!("unexpected {t:?} in a condition")),
        }
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// The `.ini` text for `tests` (section name → expectations), as `--update-metadata` writes it.
pub fn render(tests: &BTreeMap<String, TestMeta>) -> String {
    let mut out = String::new();
    for (name, meta) in tests {
        out += &format!("[{}]\n", escape(name));
        if let Some(reason) = &meta.disabled {
            out += &format!("  disabled: {reason}\n");
        }
        if !meta.expected.is_empty() && meta.expected != ["OK"] {
            out += &format!("  expected: {}\n", value_of(&meta.expected));
        }
        for (sub, expected) in &meta.subtests {
            if expected.is_empty() || expected == &["PASS"] {
                continue;
            }
            out += &format!(
                "\n  [{}]\n    expected: {}\n",
                escape(sub),
                value_of(expected)
            );
        }
        out.push('\n');
    }
    out
}

fn value_of(statuses: &[String]) -> String {
    if statuses.len() == 1 {
        statuses[0].clone()
    } else {
        format!("[{}]", statuses.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sections_values_lists_and_conditions() {
        let run_info = json!({"os": "linux", "debug": false, "bits": 64, "product": "bgsync"});
        let text = "\
[retry.https.window.html]
  bug: https://example.com/1
  expected: ERROR
  [a subtest \\] with a bracket]
    expected: FAIL
  [flaky one]
    expected: [PASS, FAIL]
  [only on linux]
    expected:
      if os == \"win\": TIMEOUT
      if os == \"linux\" and not debug: FAIL   # this one
      PASS

[other.any.worker.html]
  disabled:
    if bits == 32: too little memory
  [x]
    expected:
      if (product == \"chrome\") or debug: FAIL
";
        let t = parse(text, &run_info).unwrap();
        let retry = &t["retry.https.window.html"];
        assert_eq!(retry.allowed(), ["ERROR"]);
        assert_eq!(
            retry.allowed_subtest("a subtest ] with a bracket"),
            ["FAIL"]
        );
        assert_eq!(retry.allowed_subtest("flaky one"), ["PASS", "FAIL"]);
        assert_eq!(retry.allowed_subtest("only on linux"), ["FAIL"]);
        assert_eq!(retry.allowed_subtest("unlisted"), ["PASS"]);
        let other = &t["other.any.worker.html"];
        assert_eq!(other.disabled, None, "bits is 64");
        assert_eq!(
            other.allowed_subtest("x"),
            ["PASS"],
            "no condition held, no default"
        );
        assert!(eval("bits != 32 and os == 'linux'", &run_info).unwrap());
        assert!(eval("not (os == \"mac\" or debug)", &run_info).unwrap());
        assert!(eval("os ==", &run_info).is_err());
    }

    #[test]
    fn rendered_metadata_reads_back_the_same() {
        let mut tests = BTreeMap::new();
        tests.insert(
            "t.window.html".to_owned(),
            TestMeta {
                expected: vec!["ERROR".into()],
                subtests: BTreeMap::from([
                    ("a [b]".to_owned(), vec!["FAIL".to_owned()]),
                    (
                        "c".to_owned(),
                        vec!["PASS".to_owned(), "TIMEOUT".to_owned()],
                    ),
                ]),
                disabled: None,
            },
        );
        let back = parse(&render(&tests), &json!({})).unwrap();
        assert_eq!(back, tests);
    }
}
