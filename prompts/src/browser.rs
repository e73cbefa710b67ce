//! The `simple_browser` call syntax: `search("q", recency_days=7)`, `mclick([0, 3])`,
//! `open_url("https://...")`, read with a small parser for that subset of Python call syntax.

use serde::{Deserialize, Serialize};

/// One `simple_browser` command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum BrowserCall {
    /// Search the web.
    Search {
        /// The query.
        query: String,
        /// Only results from the last N days, when given.
        recency_days: Option<u32>,
    },
    /// Open several search results by their ids.
    Mclick {
        /// Result ids from the last search.
        ids: Vec<u32>,
    },
    /// Open one URL.
    OpenUrl {
        /// The address.
        url: String,
    },
}

/// What the model is told when a browser call does not parse.
pub const BROWSER_USAGE: &str = "simple_browser accepts exactly one of: search(\"query\", recency_days=N), mclick([id, ...]), open_url(\"https://...\")";

impl BrowserCall {
    /// Parses one call. The error says what was wrong, in words a model can act on.
    pub fn parse(text: &str) -> Result<BrowserCall, String> {
        let mut p = Lexer {
            chars: text.trim().chars().collect(),
            pos: 0,
        };
        let name = p
            .ident()
            .ok_or_else(|| format!("expected a function call; {BROWSER_USAGE}"))?;
        p.expect('(')?;
        let args = p.args()?;
        p.skip_ws();
        p.eat(';');
        p.skip_ws();
        if p.pos < p.chars.len() {
            return Err(format!(
                "unexpected text after the closing parenthesis; write one call only. {BROWSER_USAGE}"
            ));
        }
        build(&name, args)
    }

    /// The call as the model would write it.
    pub fn to_source(&self) -> String {
        match self {
            BrowserCall::Search {
                query,
                recency_days: Some(days),
            } => format!("search({}, recency_days={days})", quote(query)),
            BrowserCall::Search { query, .. } => format!("search({})", quote(query)),
            BrowserCall::Mclick { ids } => {
                let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
                format!("mclick([{}])", ids.join(", "))
            }
            BrowserCall::OpenUrl { url } => format!("open_url({})", quote(url)),
        }
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

#[derive(Debug)]
enum Literal {
    Str(String),
    Int(i64),
    List(Vec<Literal>),
}

impl Literal {
    fn kind(&self) -> &'static str {
        match self {
            Literal::Str(_) => "a string",
            Literal::Int(_) => "an integer",
            Literal::List(_) => "a list",
        }
    }
}

struct Args {
    positional: Vec<Literal>,
    keyword: Vec<(String, Literal)>,
}

impl Args {
    /// Takes the argument at `index` or named `name`; errors when given twice.
    fn take(&mut self, index: usize, name: &str) -> Result<Option<Literal>, String> {
        let by_name = self.keyword.iter().position(|(k, _)| k == name);
        let by_pos = (index < self.positional.len()).then_some(index);
        match (by_pos, by_name) {
            (Some(_), Some(_)) => Err(format!("argument `{name}` is given twice")),
            (Some(i), None) => Ok(Some(std::mem::replace(
                &mut self.positional[i],
                Literal::Int(0),
            ))),
            (None, Some(i)) => Ok(Some(self.keyword.remove(i).1)),
            (None, None) => Ok(None),
        }
    }

    fn finish(self, function: &str, max_positional: usize) -> Result<(), String> {
        if self.positional.len() > max_positional {
            return Err(format!(
                "{function} takes at most {max_positional} positional argument(s), got {}",
                self.positional.len()
            ));
        }
        match self.keyword.first() {
            Some((k, _)) => Err(format!("{function} has no argument `{k}`")),
            None => Ok(()),
        }
    }
}

fn build(name: &str, mut args: Args) -> Result<BrowserCall, String> {
    match name {
        "search" => {
            let query = match args.take(0, "query")? {
                Some(Literal::Str(q)) if !q.trim().is_empty() => q,
                Some(Literal::Str(_)) => return Err("search query is empty".into()),
                Some(other) => {
                    return Err(format!(
                        "search query must be a string, got {}",
                        other.kind()
                    ));
                }
                None => return Err("search needs a query: search(\"query\")".into()),
            };
            let recency_days = match args.take(1, "recency_days")? {
                Some(Literal::Int(d)) => Some(
                    u32::try_from(d)
                        .map_err(|_| format!("recency_days must be a positive integer, got {d}"))?,
                ),
                Some(other) => {
                    return Err(format!(
                        "recency_days must be an integer, got {}",
                        other.kind()
                    ));
                }
                None => None,
            };
            args.finish("search", 2)?;
            Ok(BrowserCall::Search {
                query,
                recency_days,
            })
        }
        "mclick" => {
            let ids = match args.take(0, "ids")? {
                Some(Literal::List(items)) => items
                    .into_iter()
                    .map(|item| match item {
                        Literal::Int(i) => u32::try_from(i).map_err(|_| {
                            format!("mclick ids must be result numbers >= 0, got {i}")
                        }),
                        other => Err(format!("mclick ids must be integers, got {}", other.kind())),
                    })
                    .collect::<Result<Vec<u32>, String>>()?,
                Some(other) => {
                    return Err(format!(
                        "mclick takes a list of ids like mclick([0, 2]), got {}",
                        other.kind()
                    ));
                }
                None => return Err("mclick needs a list of result ids: mclick([0, 2])".into()),
            };
            if ids.is_empty() {
                return Err("mclick needs at least one result id: mclick([0, 2])".into());
            }
            args.finish("mclick", 1)?;
            Ok(BrowserCall::Mclick { ids })
        }
        "open_url" => {
            let url = match args.take(0, "url")? {
                Some(Literal::Str(u)) if !u.trim().is_empty() => u,
                Some(Literal::Str(_)) => return Err("open_url needs a non-empty URL".into()),
                Some(other) => {
                    return Err(format!("open_url takes a string URL, got {}", other.kind()));
                }
                None => return Err("open_url needs a URL: open_url(\"https://...\")".into()),
            };
            args.finish("open_url", 1)?;
            Ok(BrowserCall::OpenUrl { url })
        }
        other => Err(format!("unknown function `{other}`; {BROWSER_USAGE}")),
    }
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            return Ok(());
        }
        Err(match self.peek() {
            Some(found) => format!("expected `{c}` but found `{found}`; {BROWSER_USAGE}"),
            None => format!("expected `{c}` but the call ends there; {BROWSER_USAGE}"),
        })
    }

    fn ident(&mut self) -> Option<String> {
        self.skip_ws();
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.pos += 1;
        }
        (self.pos > start).then(|| self.chars[start..self.pos].iter().collect())
    }

    fn args(&mut self) -> Result<Args, String> {
        let mut args = Args {
            positional: Vec::new(),
            keyword: Vec::new(),
        };
        loop {
            if self.eat(')') {
                return Ok(args);
            }
            let save = self.pos;
            let keyword = match self.ident() {
                Some(name) if self.eat('=') => Some(name),
                _ => {
                    self.pos = save;
                    None
                }
            };
            let value = self.literal(0)?;
            match keyword {
                Some(name) => args.keyword.push((name, value)),
                None if !args.keyword.is_empty() => {
                    return Err("a positional argument follows a keyword argument".into());
                }
                None => args.positional.push(value),
            }
            if !self.eat(',') {
                self.expect(')')?;
                return Ok(args);
            }
        }
    }

    fn literal(&mut self, depth: usize) -> Result<Literal, String> {
        self.skip_ws();
        match self.peek() {
            Some(q @ ('"' | '\'')) => self.string(q).map(Literal::Str),
            Some('[') if depth < 4 => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    if self.eat(']') {
                        return Ok(Literal::List(items));
                    }
                    items.push(self.literal(depth + 1)?);
                    if !self.eat(',') {
                        self.expect(']')?;
                        return Ok(Literal::List(items));
                    }
                }
            }
            Some(c) if c == '-' || c.is_ascii_digit() => self.integer(),
            Some(c) => Err(format!(
                "expected a string, an integer or a list but found `{c}`; {BROWSER_USAGE}"
            )),
            None => Err(format!(
                "the call ends before its arguments do; {BROWSER_USAGE}"
            )),
        }
    }

    fn integer(&mut self) -> Result<Literal, String> {
        let start = self.pos;
        if self.peek() == Some('-') {
            self.pos += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '_') {
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos]
            .iter()
            .filter(|c| **c != '_')
            .collect();
        text.parse()
            .map(Literal::Int)
            .map_err(|_| format!("`{text}` is not a valid integer"))
    }

    fn string(&mut self, quote: char) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let c = self
                .peek()
                .ok_or("a string is not closed; end it with a matching quote")?;
            self.pos += 1;
            match c {
                c if c == quote => return Ok(out),
                '\\' => self.escape(&mut out)?,
                c => out.push(c),
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), String> {
        let c = self.peek().ok_or("a string ends with a lone backslash")?;
        self.pos += 1;
        match c {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '0' => out.push('\0'),
            '\\' | '\'' | '"' => out.push(c),
            'x' | 'u' => {
                let len = if c == 'x' { 2 } else { 4 };
                let hex: String = self.chars.iter().skip(self.pos).take(len).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == len)
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("bad escape `\\{c}{hex}` in a string"))?;
                self.pos += len;
                out.push(code);
            }
            other => {
                out.push('\\');
                out.push(other);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        let cases = [
            (
                "search(\"GLM-4 release\", recency_days=7)",
                BrowserCall::Search {
                    query: "GLM-4 release".into(),
                    recency_days: Some(7),
                },
            ),
            (
                "search('it\\'s', 3)",
                BrowserCall::Search {
                    query: "it's".into(),
                    recency_days: Some(3),
                },
            ),
            (
                "mclick(ids=[0, 3, 5,])",
                BrowserCall::Mclick { ids: vec![0, 3, 5] },
            ),
            (
                "open_url(url=\"https://例子.cn/a?b=1\")",
                BrowserCall::OpenUrl {
                    url: "https://例子.cn/a?b=1".into(),
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(BrowserCall::parse(text), Ok(want.clone()), "{text}");
            assert_eq!(BrowserCall::parse(&want.to_source()), Ok(want));
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let cases = [
            ("search()", "needs a query"),
            ("search(42)", "must be a string"),
            ("search(\"q\", recency_days=\"week\")", "must be an integer"),
            ("search(\"q\", days=3)", "no argument `days`"),
            ("search(\"q\", query=\"r\")", "given twice"),
            ("mclick([])", "at least one"),
            ("mclick([1, -2])", ">= 0"),
            ("mclick(3)", "list of ids"),
            ("open_url(\"https://a.b\"", "ends there"),
            ("open_url(\"https://a.b)", "not closed"),
            ("click(1)", "unknown function `click`"),
            ("search(\"a\") search(\"b\")", "one call only"),
            ("", "expected a function call"),
        ];
        for (text, want) in cases {
            let err = BrowserCall::parse(text).expect_err(text);
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
