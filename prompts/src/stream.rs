//! GLM-4's output, read as it streams, into OpenAI's shape: content, and tool calls that give
//! their name as soon as the first line is complete.
//!
//! The model writes segments separated by `<|assistant|>`. A segment whose first line is a
//! declared tool's name is a call (the rest of the segment is its arguments); any other segment is
//! content. Text after a stop token is never read. Content streams as it comes, less leading and
//! trailing whitespace (held back until more text follows), so the streamed content equals the
//! content of the same answer unstreamed. Arguments are sent when their segment ends, cleaned of
//! a Markdown fence, so a client's `json.loads` reads them.

use crate::{Arguments, DeclaredTools, Parsed, SpecialToken, ToolKind, parse};

/// What a piece of output adds to the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Content text.
    Content(String),
    /// A call starts: its index and name.
    CallStart {
        /// Index among the answer's calls.
        index: usize,
        /// The function.
        name: String,
    },
    /// A call's arguments, whole.
    CallArguments {
        /// Index among the answer's calls.
        index: usize,
        /// JSON text.
        arguments: String,
    },
}

/// A complete call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The function.
    pub name: String,
    /// JSON text.
    pub arguments: String,
}

enum State {
    /// At a segment's start: the first line is not complete yet.
    Header(String),
    /// In content.
    Content,
    /// In a call's arguments.
    Call(String),
    /// A stop token was seen.
    Done,
}

/// The streaming reader of one answer.
pub struct Reader {
    tools: DeclaredTools,
    longest_name: usize,
    state: State,
    /// Text not yet classified (a control token may be split across deltas).
    pending: String,
    /// Whitespace held back at the end of the content.
    held: String,
    /// The content sent so far.
    pub content: String,
    /// The calls so far.
    pub calls: Vec<Call>,
}

impl Reader {
    /// A reader for an answer to a request that offered `names`.
    pub fn new(names: &[String]) -> Self {
        let mut tools = DeclaredTools::default();
        for name in names {
            tools.add(name.clone(), ToolKind::Function);
        }
        Reader {
            tools,
            longest_name: names.iter().map(String::len).max().unwrap_or(0),
            state: State::Header(String::new()),
            pending: String::new(),
            held: String::new(),
            content: String::new(),
            calls: Vec::new(),
        }
    }

    /// Reads more output; returns what it adds.
    pub fn push(&mut self, text: &str) -> Vec<Piece> {
        let mut out = Vec::new();
        if matches!(self.state, State::Done) {
            return out;
        }
        self.pending.push_str(text);
        loop {
            // The earliest control token in what is pending.
            let found = SpecialToken::ALL
                .iter()
                .filter_map(|t| self.pending.find(t.as_str()).map(|at| (at, *t)))
                .min_by_key(|(at, _)| *at);
            match found {
                Some((at, token)) => {
                    let before: String = self.pending[..at].to_owned();
                    self.pending.drain(..at + token.as_str().len());
                    self.text(&before, &mut out);
                    if SpecialToken::STOPS.contains(&token) {
                        self.end_segment(&mut out);
                        self.state = State::Done;
                        self.pending.clear();
                        return out;
                    }
                    if token == SpecialToken::Assistant {
                        self.end_segment(&mut out);
                        self.state = State::Header(String::new());
                    } else {
                        self.text(token.as_str(), &mut out);
                    }
                }
                None => {
                    // Keep back a tail that may be the start of a control token.
                    let keep = partial_control_suffix(&self.pending);
                    let ready: String = self.pending[..self.pending.len() - keep].to_owned();
                    self.pending.drain(..self.pending.len() - keep);
                    self.text(&ready, &mut out);
                    return out;
                }
            }
        }
    }

    /// The output ended: flushes what is held.
    pub fn finish(&mut self) -> Vec<Piece> {
        let mut out = Vec::new();
        if !matches!(self.state, State::Done) {
            let rest = std::mem::take(&mut self.pending);
            self.text(&rest, &mut out);
            self.end_segment(&mut out);
            self.state = State::Done;
        }
        out
    }

    fn text(&mut self, text: &str, out: &mut Vec<Piece>) {
        if text.is_empty() {
            return;
        }
        match &mut self.state {
            State::Done => {}
            State::Call(args) => args.push_str(text),
            State::Content => self.content_text(text, out),
            State::Header(buf) => {
                buf.push_str(text);
                let line = std::mem::take(buf);
                if let Some(nl) = line.find('\n') {
                    let header = &line[..nl];
                    let rest = line[nl + 1..].to_owned();
                    let name = header.trim();
                    if !name.is_empty() && self.tools.kind(name).is_some() {
                        self.start_call(name, out);
                        self.state = State::Call(rest);
                    } else {
                        self.start_content(&line, out);
                    }
                } else if !self.could_be_a_name(&line) {
                    self.start_content(&line, out);
                } else {
                    self.state = State::Header(line);
                }
            }
        }
    }

    /// Whether an unfinished first line may still turn out to be a tool's name.
    fn could_be_a_name(&self, line: &str) -> bool {
        let t = line.trim_start();
        if t.len() > self.longest_name + 16 {
            return false;
        }
        let core = t.trim_end();
        self.tools
            .names()
            .any(|n| n.starts_with(core) && (core.len() == t.len() || core == n))
    }

    /// Records a new call to `name` and sends its start; returns its index.
    fn start_call(&mut self, name: &str, out: &mut Vec<Piece>) -> usize {
        let index = self.calls.len();
        self.calls.push(Call {
            name: name.to_owned(),
            arguments: String::new(),
        });
        out.push(Piece::CallStart {
            index,
            name: name.to_owned(),
        });
        index
    }

    fn start_content(&mut self, text: &str, out: &mut Vec<Piece>) {
        self.state = State::Content;
        if !self.content.is_empty() || !self.held.is_empty() {
            // A second content segment: kept apart from the first by a line break.
            self.held = "\n".into();
        }
        self.content_text(text, out);
    }

    fn content_text(&mut self, text: &str, out: &mut Vec<Piece>) {
        let text = if self.content.is_empty() && self.held.is_empty() {
            text.trim_start()
        } else {
            text
        };
        if text.is_empty() {
            return;
        }
        let body = text.trim_end();
        if body.is_empty() {
            self.held.push_str(text);
            return;
        }
        let mut piece = std::mem::take(&mut self.held);
        piece.push_str(body);
        self.held = text[body.len()..].to_owned();
        self.content.push_str(&piece);
        out.push(Piece::Content(piece));
    }

    fn end_segment(&mut self, out: &mut Vec<Piece>) {
        match std::mem::replace(&mut self.state, State::Content) {
            State::Call(args) => {
                let index = self.calls.len() - 1;
                let name = self.calls[index].name.clone();
                let arguments = clean_arguments(&name, &args, &self.tools);
                self.calls[index].arguments = arguments.clone();
                out.push(Piece::CallArguments { index, arguments });
            }
            State::Header(buf) => {
                let name = buf.trim();
                if !name.is_empty() && self.tools.kind(name).is_some() {
                    // A name with nothing after it (cut by the token limit).
                    let index = self.start_call(name, out);
                    out.push(Piece::CallArguments {
                        index,
                        arguments: String::new(),
                    });
                } else if !buf.trim().is_empty() {
                    self.start_content(&buf, out);
                }
            }
            State::Content | State::Done => {}
        }
        self.held.clear();
    }
}

/// Arguments as JSON text: the model's object without a Markdown fence, compact; text that does
/// not parse is passed on trimmed, for the client to judge.
fn clean_arguments(name: &str, args: &str, tools: &DeclaredTools) -> String {
    match parse(&format!("{name}\n{args}"), tools) {
        Parsed::Call(call) => match call.arguments {
            Arguments::Json(value) => value.to_string(),
            _ => args.trim().to_owned(),
        },
        _ => args.trim().to_owned(),
    }
}

/// The length of the longest suffix of `text` that begins a control token's spelling.
fn partial_control_suffix(text: &str) -> usize {
    let Some(lt) = text.rfind(['<', '[']) else {
        return 0;
    };
    let tail = &text[lt..];
    if SpecialToken::ALL
        .iter()
        .any(|t| t.as_str().starts_with(tail) && t.as_str() != tail)
    {
        text.len() - lt
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["get_weather".into(), "get_time".into()]
    }

    /// Reads `output` in pieces of `size` bytes (on char boundaries).
    fn read(output: &str, size: usize) -> (Reader, Vec<Piece>) {
        let mut reader = Reader::new(&names());
        let mut pieces = Vec::new();
        let chars: Vec<char> = output.chars().collect();
        for chunk in chars.chunks(size) {
            pieces.extend(reader.push(&chunk.iter().collect::<String>()));
        }
        pieces.extend(reader.finish());
        (reader, pieces)
    }

    #[test]
    fn streamed_and_whole_readings_agree() {
        let outputs = [
            "\nIt is sunny in Oslo.  \n<|user|>",
            "get_weather\n{\"city\": \"Oslo\"}<|observation|>",
            "get_weather\n```json\n{\"city\": \"Oslo\"}\n```<|observation|>",
            "I will look.<|assistant|>get_time\n{}<|assistant|>get_weather\n{\"city\": \"X\"}<|observation|>",
            "\nplain <|assistant|> not closed",
            "get_weathering is a word\nand more<|endoftext|>",
            "\n<|user|>",
        ];
        for output in outputs {
            let (whole, _) = read(output, 10_000);
            for size in [1, 2, 3, 7] {
                let (streamed, pieces) = read(output, size);
                assert_eq!(streamed.content, whole.content, "{output:?} by {size}");
                assert_eq!(streamed.calls, whole.calls, "{output:?} by {size}");
                let sent: String = pieces
                    .iter()
                    .filter_map(|p| match p {
                        Piece::Content(c) => Some(c.as_str()),
                        _ => None,
                    })
                    .collect();
                assert_eq!(sent, streamed.content, "{output:?} by {size}");
            }
        }
    }

    #[test]
    fn calls_and_content_are_told_apart() {
        let (r, _) = read("\nIt is sunny.  \n<|user|>ignored", 3);
        assert_eq!(r.content, "It is sunny.");
        assert!(r.calls.is_empty());
        let (r, pieces) = read(
            "get_weather\n```json\n{\"city\": \"Oslo\"}\n```<|observation|>",
            2,
        );
        assert_eq!(r.content, "");
        assert_eq!(
            r.calls,
            vec![Call {
                name: "get_weather".into(),
                arguments: "{\"city\":\"Oslo\"}".into()
            }]
        );
        assert_eq!(
            pieces[0],
            Piece::CallStart {
                index: 0,
                name: "get_weather".into()
            }
        );
        let (r, _) = read(
            "I will look.<|assistant|>get_time\n{}<|assistant|>get_weather\n{\"city\": \"X\"}<|observation|>",
            4,
        );
        assert_eq!(r.content, "I will look.");
        assert_eq!(r.calls.len(), 2);
        assert_eq!(r.calls[1].arguments, "{\"city\":\"X\"}");
        // A line that starts like a name but is not one is content.
        let (r, _) = read("get_weathering is a word\nand more<|endoftext|>", 5);
        assert!(r.calls.is_empty());
        assert_eq!(r.content, "get_weathering is a word\nand more");
        // Text after a stop token is never read, even a call.
        let (r, _) = read("\nok<|user|>get_time\n{}", 1);
        assert_eq!((r.content.as_str(), r.calls.len()), ("ok", 0));
    }

    #[test]
    fn content_streams_before_the_line_ends() {
        let mut r = Reader::new(&names());
        assert!(
            r.push("Hello").len() == 1,
            "not a name's prefix: sent at once"
        );
        let mut r = Reader::new(&names());
        assert!(r.push("get_").is_empty(), "may be a name: held");
        assert_eq!(
            r.push("weather\n"),
            vec![Piece::CallStart {
                index: 0,
                name: "get_weather".into()
            }]
        );
    }
}
