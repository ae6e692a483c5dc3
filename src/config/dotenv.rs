//! Env files (the `env_file` key): dotenv text parsed into variables, with every bad line
//! reported at its line and column in the file.
//!
//! The syntax, one variable per line:
//!
//! ```text
//! # a comment line; blank lines are skipped
//! export PORT = 3000          # `export ` is optional; spaces around `=` are trimmed
//! GREETING=hello world # the value ends at ` #` (an inline comment)
//! LITERAL='no $ or \n here'   # single quotes: exactly what is between them
//! ESCAPED="tab\tnewline\n"    # double quotes: \n \t \" \\
//! MULTI="first line
//! second line"                # quoted values may span lines
//! ```
//!
//! A name is `[A-Za-z_][A-Za-z0-9_]*`. Nothing is expanded (`$VAR` stays as written), as
//! with Docker's and systemd's env files. Pure: the file is read by [`super::load`], and
//! later files and the `env` table are layered over these variables by validation.

/// What a line of an env file looks like, for error messages.
pub const LINE_EXPECTED: &str =
    "`KEY=value`, with KEY made of letters, digits and `_`, not starting with a digit";

/// The escapes of a double-quoted value, for error messages.
const ESCAPES_EXPECTED: &str =
    "`\\n`, `\\t`, `\\\"` or `\\\\`; in single quotes every character is kept as written";

/// One bad line of an env file, located in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotenvError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
    /// What is wrong.
    pub message: String,
    /// What would have been valid.
    pub expected: Option<&'static str>,
}

/// The variables of `text`, in file order (a name given twice is listed twice; the later
/// one is meant to win), or every bad line.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, Vec<DotenvError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut vars = Vec::new();
    let mut errors = Vec::new();
    let mut next = 0;
    while next < lines.len() {
        let mut p = Parser {
            lines: &lines,
            line: next,
        };
        match p.assignment() {
            Ok(Some(var)) => vars.push(var),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
        next = p.line + 1;
    }
    if errors.is_empty() {
        Ok(vars)
    } else {
        Err(errors)
    }
}

/// Reads one assignment starting at `lines[line]`; a quoted value moves `line` on to the
/// line where it ends.
struct Parser<'l, 't> {
    lines: &'l [&'t str],
    /// 0-based index of the current line.
    line: usize,
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn starts_name(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn in_name(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Byte offset of the first non-blank character of `s` at or after `at`.
fn skip_blanks(s: &str, at: usize) -> usize {
    s[at..].find(|c| !is_blank(c)).map_or(s.len(), |i| at + i)
}

impl<'t> Parser<'_, 't> {
    fn text(&self) -> &'t str {
        self.lines[self.line]
    }

    /// An error at byte `at` of the current line.
    fn error(&self, at: usize, message: String, expected: Option<&'static str>) -> DotenvError {
        self.error_on(self.line, at, message, expected)
    }

    /// An error at byte `at` of the 0-based line `index`.
    fn error_on(
        &self,
        index: usize,
        at: usize,
        message: String,
        expected: Option<&'static str>,
    ) -> DotenvError {
        let line = self.lines[index];
        DotenvError {
            line: index + 1,
            col: line[..at.min(line.len())].chars().count() + 1,
            message,
            expected,
        }
    }

    fn assignment(&mut self) -> Result<Option<(String, String)>, DotenvError> {
        let line = self.text();
        let mut at = skip_blanks(line, 0);
        if at == line.len() || line[at..].starts_with('#') {
            return Ok(None);
        }
        if let Some(after) = line[at..].strip_prefix("export") {
            let name_at = skip_blanks(line, line.len() - after.len());
            let blank = after.starts_with(is_blank);
            if blank && line[name_at..].starts_with(starts_name) {
                at = name_at;
            }
        }
        let name_end = line[at..]
            .find(|c| !in_name(c))
            .map_or(line.len(), |i| at + i);
        let name = &line[at..name_end];
        match name.chars().next() {
            None if line[at..].starts_with('=') => {
                return Err(self.error(
                    at,
                    "missing variable name before `=`".into(),
                    Some(LINE_EXPECTED),
                ))
            }
            None => {
                let c = line[at..].chars().next().unwrap_or(' ');
                return Err(self.error(
                    at,
                    format!("{c:?} cannot start a variable name"),
                    Some(LINE_EXPECTED),
                ));
            }
            Some(c) if c.is_ascii_digit() => {
                return Err(self.error(
                    at,
                    format!("variable name `{name}` starts with a digit"),
                    Some(LINE_EXPECTED),
                ))
            }
            Some(_) => {}
        }
        let eq = skip_blanks(line, name_end);
        match line[eq..].chars().next() {
            Some('=') => {}
            None => {
                return Err(self.error(
                    eq,
                    format!("`{name}` has no `=` and no value"),
                    Some(LINE_EXPECTED),
                ))
            }
            Some(c) if eq == name_end => {
                return Err(self.error(
                    eq,
                    format!("{c:?} cannot be part of a variable name (after `{name}`)"),
                    Some(LINE_EXPECTED),
                ))
            }
            Some(c) => {
                return Err(self.error(
                    eq,
                    format!("expected `=` after `{name}`, found {c:?}"),
                    Some(LINE_EXPECTED),
                ))
            }
        }
        let name = name.to_string();
        let (first, value_at) = (self.line, skip_blanks(line, eq + 1));
        let value = match line[value_at..].chars().next() {
            Some(q @ ('\'' | '"')) => self.quoted(value_at, q)?,
            _ => Self::unquoted(&line[eq + 1..]),
        };
        if value.contains('\0') {
            return Err(self.error_on(
                first,
                value_at,
                format!("the value of `{name}` contains a NUL byte, which no process can receive"),
                None,
            ));
        }
        Ok(Some((name, value)))
    }

    /// The value after `=` without quotes: up to a `#` that follows a blank, trimmed.
    fn unquoted(raw: &str) -> String {
        let mut end = raw.len();
        let mut previous = '=';
        for (i, c) in raw.char_indices() {
            if c == '#' && is_blank(previous) {
                end = i;
                break;
            }
            previous = c;
        }
        raw[..end].trim_matches(is_blank).to_string()
    }

    /// A value in `quote`s opening at byte `open` of the current line, over as many lines
    /// as it takes; then nothing but blanks or a comment may follow on its last line.
    fn quoted(&mut self, open: usize, quote: char) -> Result<String, DotenvError> {
        let first = self.line;
        let mut value = String::new();
        let mut from = open + 1;
        loop {
            let line = self.text();
            let mut chars = line[from..].char_indices().map(|(i, c)| (from + i, c));
            while let Some((i, c)) = chars.next() {
                match c {
                    c if c == quote => return self.after_quote(i + 1).map(|()| value),
                    '\\' if quote == '"' => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, 't')) => value.push('\t'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, other)) => {
                            return Err(self.error(
                                i,
                                format!("unknown escape `\\{other}` in a double-quoted value"),
                                Some(ESCAPES_EXPECTED),
                            ))
                        }
                        None => {
                            return Err(self.error(
                                i,
                                "a `\\` at the end of a line escapes nothing".into(),
                                Some(ESCAPES_EXPECTED),
                            ))
                        }
                    },
                    c => value.push(c),
                }
            }
            if self.line + 1 == self.lines.len() {
                self.line = first;
                let kind = if quote == '"' { "double" } else { "single" };
                let message = format!("unterminated {kind}-quoted value: no closing {quote}");
                return Err(self.error(open, message, None));
            }
            value.push('\n');
            self.line += 1;
            from = 0;
        }
    }

    /// After the closing quote at byte `at` of the current line: blanks, then the end of
    /// the line or a comment.
    fn after_quote(&self, at: usize) -> Result<(), DotenvError> {
        let line = self.text();
        let rest = skip_blanks(line, at);
        match line[rest..].chars().next() {
            None | Some('#') => Ok(()),
            Some(c) => Err(self.error(
                rest,
                format!("unexpected {c:?} after the closing quote"),
                Some("the end of the line or a ` #` comment after a quoted value"),
            )),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn vars(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
    }

    fn var(text: &str) -> String {
        let mut all = vars(text);
        assert_eq!(all.len(), 1, "{text:?}");
        all.remove(0).1
    }

    /// The errors as `LINE:COL: message`.
    fn errors(text: &str) -> Vec<String> {
        parse(text)
            .unwrap_err()
            .into_iter()
            .map(|e| format!("{}:{}: {}", e.line, e.col, e.message))
            .collect()
    }

    #[test]
    fn plain_lines_comments_blanks_and_export() {
        let text =
            "# comment\n\nA=1\n  export B = two words  \n\t# indented comment\nC=\nexport=x\n";
        assert_eq!(
            vars(text),
            [
                ("A".to_string(), "1".to_string()),
                ("B".into(), "two words".into()),
                ("C".into(), String::new()),
                ("export".into(), "x".into()),
            ]
        );
        assert_eq!(var("_x9 =\tv"), "v");
        assert_eq!(var("\u{feff}A=1\r\n"), "1");
        assert_eq!(vars("A=1\nA=2").last().unwrap().1, "2");
    }

    #[test]
    fn inline_comments_need_a_blank_before_them() {
        assert_eq!(var("A=value # comment"), "value");
        assert_eq!(var("A=value\t#comment"), "value");
        assert_eq!(var("A=val#ue"), "val#ue");
        assert_eq!(var("A=#not a comment"), "#not a comment");
        assert_eq!(var("A= # only a comment"), "");
        assert_eq!(var("A=$HOME/x"), "$HOME/x");
    }

    #[test]
    fn quoted_values() {
        assert_eq!(
            var("A='lit \\n $X # not a comment'"),
            "lit \\n $X # not a comment"
        );
        assert_eq!(
            var("A=\"a\\tb\\nc \\\"q\\\" \\\\\" # comment"),
            "a\tb\nc \"q\" \\"
        );
        assert_eq!(var("A = \"  spaced  \"  "), "  spaced  ");
        assert_eq!(var("A=''"), "");
        assert_eq!(var("A=\"it's\""), "it's");
        assert_eq!(var("A='say \"hi\"'"), "say \"hi\"");
    }

    #[test]
    fn quoted_values_may_span_lines() {
        let text = "A=\"one\n  two\\t\nthree\"\nB='x\r\ny'\nC=after";
        assert_eq!(
            vars(text),
            [
                ("A".to_string(), "one\n  two\t\nthree".to_string()),
                ("B".into(), "x\ny".into()),
                ("C".into(), "after".into()),
            ]
        );
    }

    #[test]
    fn bad_names_are_located() {
        assert_eq!(
            errors("OK=1\n1ABC=x\n  =x\nA-B=1\nA B=1\n-x\nJUST_A_NAME\n"),
            [
                "2:1: variable name `1ABC` starts with a digit",
                "3:3: missing variable name before `=`",
                "4:2: '-' cannot be part of a variable name (after `A`)",
                "5:3: expected `=` after `A`, found 'B'",
                "6:1: '-' cannot start a variable name",
                "7:12: `JUST_A_NAME` has no `=` and no value",
            ]
        );
        let e = &parse("é=1").unwrap_err()[0];
        assert_eq!((e.line, e.col), (1, 1));
        assert_eq!(e.expected, Some(LINE_EXPECTED));
    }

    #[test]
    fn bad_values_are_located() {
        assert_eq!(
            errors("A=\"x\\qy\"\nB='ok' trailing\nC=\"é\\\nD=1\""),
            [
                "1:5: unknown escape `\\q` in a double-quoted value",
                "2:8: unexpected 't' after the closing quote",
                "3:5: a `\\` at the end of a line escapes nothing",
            ]
        );
        assert_eq!(
            errors("A=1\nB = 'open\nC=2\n"),
            ["2:5: unterminated single-quoted value: no closing '"]
        );
        assert_eq!(
            errors("X=\"never closed"),
            ["1:3: unterminated double-quoted value: no closing \""]
        );
        assert_eq!(
            errors("N=a\0b"),
            ["1:3: the value of `N` contains a NUL byte, which no process can receive"]
        );
    }

    #[test]
    fn every_bad_line_is_reported() {
        let e = parse("1=a\nOK=1\n2=b\n").unwrap_err();
        assert_eq!(e.iter().map(|e| e.line).collect::<Vec<_>>(), [1, 3]);
    }
}
