//! What the client prints and how it ends: the exit codes (defined here and nowhere
//! else), the one-line failure, aligned tables, colour (only on a terminal, never with
//! NO_COLOR or --json), and the text-or-JSON result of a command.

use std::io::IsTerminal;

use tonic::Code;

/// The exit codes scripts can rely on. `accord --help` and the README list the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitClass {
    /// Internal or unexpected error.
    Internal = 1,
    /// Invalid input or usage: a bad flag or value, an ambiguous id prefix.
    InvalidInput = 2,
    /// The initiative, decision or feedback does not exist.
    NotFound = 3,
    /// Version mismatch, already exists, or a rule of the domain refused the command.
    Conflict = 4,
    /// The caller lacks the decision right, or was not identified.
    Denied = 5,
    /// No server answers, or its database is down.
    Unavailable = 6,
    /// `accord audit verify` found a broken link in a hash chain or a checkpoint.
    VerificationFailed = 7,
}

impl ExitClass {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The class of a gRPC status code.
    pub fn of(code: Code) -> ExitClass {
        match code {
            Code::InvalidArgument | Code::OutOfRange => ExitClass::InvalidInput,
            Code::NotFound => ExitClass::NotFound,
            Code::AlreadyExists | Code::Aborted | Code::FailedPrecondition => ExitClass::Conflict,
            Code::PermissionDenied | Code::Unauthenticated => ExitClass::Denied,
            Code::Unavailable | Code::DeadlineExceeded => ExitClass::Unavailable,
            _ => ExitClass::Internal,
        }
    }
}

/// Why a command failed: one line for stderr and the exit code that goes with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub class: ExitClass,
    pub message: String,
}

/// An unclassified failure: exit 1.
impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::new(ExitClass::Internal, message)
    }
}

impl Failure {
    pub fn new(class: ExitClass, message: impl Into<String>) -> Failure {
        Failure { class, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(ExitClass::InvalidInput, message)
    }

    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure::new(ExitClass::NotFound, message)
    }

    /// A server's refusal, in its own words (on one line), prefixed by what kind of refusal it is.
    pub fn from_status(status: &tonic::Status, server: &str) -> Failure {
        let class = ExitClass::of(status.code());
        let message = one_line(status.message());
        let message = if message.is_empty() { status.code().description().to_owned() } else { message };
        let message = match status.code() {
            Code::InvalidArgument => format!("invalid input: {message}"),
            Code::PermissionDenied => format!("permission denied: {message}"),
            Code::Aborted => format!("version conflict: {message}"),
            Code::Unavailable | Code::DeadlineExceeded => format!("{message} (server {server})"),
            Code::Unimplemented => format!("the server at {server} does not offer this yet ({message})"),
            _ => message,
        };
        Failure { class, message }
    }
}

/// Collapses line breaks so an error always stays on one line.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The result of a client command: the human text, and the same facts as JSON.
#[derive(Clone, Debug)]
pub struct Output {
    pub text: String,
    pub json: serde_json::Value,
    /// Written already, as it came (a streamed history or export): nothing left to print.
    streamed: bool,
}

impl Output {
    pub fn new(text: impl Into<String>, json: serde_json::Value) -> Output {
        Output { text: text.into(), json, streamed: false }
    }

    /// The result of a command that printed as it went, line by line.
    pub fn streamed() -> Output {
        Output { text: String::new(), json: serde_json::Value::Null, streamed: true }
    }

    /// Writes the output on stdout as text or as pretty JSON.
    pub fn print(&self, as_json: bool) {
        if self.streamed {
            return;
        }
        if as_json {
            match serde_json::to_string_pretty(&self.json) {
                Ok(json) => println!("{json}"),
                Err(e) => eprintln!("accord: cannot encode the result as JSON: {e}"),
            }
        } else if self.text.ends_with('\n') {
            print!("{}", self.text);
        } else {
            println!("{}", self.text);
        }
    }
}

/// How a piece of text should stand out on a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Good,
    Warn,
    Bad,
    Dim,
    Bold,
}

impl Tone {
    fn ansi(self) -> &'static str {
        match self {
            Tone::Good => "32",
            Tone::Warn => "33",
            Tone::Bad => "31",
            Tone::Dim => "2",
            Tone::Bold => "1",
        }
    }
}

/// Whether to colour: on a terminal, without NO_COLOR, and not for JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    pub colour: bool,
}

impl Style {
    pub fn for_stdout(as_json: bool) -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style { colour: !as_json && !no_color && std::io::stdout().is_terminal() }
    }

    pub fn plain() -> Style {
        Style { colour: false }
    }

    pub fn paint(&self, text: &str, tone: Tone) -> String {
        if self.colour && !text.is_empty() { format!("\x1b[{}m{text}\x1b[0m", tone.ansi()) } else { text.to_owned() }
    }

    pub fn paint_opt(&self, text: &str, tone: Option<Tone>) -> String {
        match tone {
            Some(tone) => self.paint(text, tone),
            None => text.to_owned(),
        }
    }
}

/// The tone of a state word: aligned/approved good, pending a warning, blocked/rejected bad.
pub fn tone_of(state: &str) -> Option<Tone> {
    match state {
        "aligned" | "approved" | "accepted" | "approve" => Some(Tone::Good),
        "pending" | "proposed" => Some(Tone::Warn),
        "blocked" | "rejected" | "reject" => Some(Tone::Bad),
        "n/a" | "not_applicable" | "closed" | "withdrawn" | "superseded" | "no_decisions" | "-" => Some(Tone::Dim),
        _ => None,
    }
}

/// One cell of a table: its text and, on a terminal, its tone.
#[derive(Clone, Debug)]
pub struct Cell {
    text: String,
    tone: Option<Tone>,
}

impl Cell {
    pub fn plain(text: impl Into<String>) -> Cell {
        Cell { text: text.into(), tone: None }
    }

    pub fn toned(text: impl Into<String>, tone: Option<Tone>) -> Cell {
        Cell { text: text.into(), tone }
    }

    /// A state word, toned by what it means.
    pub fn state(text: impl Into<String>) -> Cell {
        let text = text.into();
        let tone = tone_of(&text);
        Cell { text, tone }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell::plain(text)
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::plain(text)
    }
}

/// Columns aligned on the widest cell; two spaces apart; the last column is not padded.
#[derive(Clone, Debug)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<Cell>>,
    indent: usize,
}

impl Table {
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Table {
        Table { headers: headers.into_iter().map(Into::into).collect(), rows: Vec::new(), indent: 0 }
    }

    pub fn indented(mut self, indent: usize) -> Table {
        self.indent = indent;
        self
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self, style: Style) -> String {
        let columns = self.headers.len().max(self.rows.iter().map(Vec::len).max().unwrap_or(0));
        let mut widths = vec![0usize; columns];
        for (i, header) in self.headers.iter().enumerate() {
            widths[i] = widths[i].max(header.chars().count());
        }
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.text.chars().count());
            }
        }
        let pad = " ".repeat(self.indent);
        let mut out = String::new();
        let line = |cells: Vec<(String, Option<Tone>)>, out: &mut String| {
            let mut text_line = pad.clone();
            let last = cells.len().saturating_sub(1);
            for (i, (text, tone)) in cells.into_iter().enumerate() {
                let width = text.chars().count();
                text_line.push_str(&style.paint_opt(&text, tone));
                if i < last {
                    text_line.push_str(&" ".repeat(widths[i] - width + 2));
                }
            }
            out.push_str(text_line.trim_end());
            out.push('\n');
        };
        if !self.headers.is_empty() {
            line(self.headers.iter().map(|h| (h.clone(), Some(Tone::Bold))).collect(), &mut out);
        }
        for row in &self.rows {
            line(row.iter().map(|c| (c.text.clone(), c.tone)).collect(), &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_on_the_widest_cell_without_colour() {
        let mut table = Table::new(["KEY", "STATUS"]);
        table.row(vec![Cell::plain("CHECKOUT-42"), Cell::state("blocked")]);
        table.row(vec![Cell::plain("A"), Cell::state("aligned")]);
        assert_eq!(table.render(Style::plain()), "KEY          STATUS\nCHECKOUT-42  blocked\nA            aligned\n");
    }

    #[test]
    fn status_codes_map_to_exit_classes() {
        assert_eq!(ExitClass::of(Code::Aborted).code(), 4);
        assert_eq!(ExitClass::of(Code::NotFound).code(), 3);
        assert_eq!(ExitClass::of(Code::Unauthenticated).code(), 5);
        assert_eq!(ExitClass::of(Code::Unavailable).code(), 6);
        assert_eq!(ExitClass::of(Code::InvalidArgument).code(), 2);
        assert_eq!(ExitClass::of(Code::Internal).code(), 1);
        assert_eq!(ExitClass::VerificationFailed.code(), 7);
    }
}
