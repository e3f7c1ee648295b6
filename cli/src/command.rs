//! The shell's backslash commands: one list that the dispatcher, `\?` and
//! the REPL's completion all read (as datafusion-cli's `command.rs`).

use std::str::FromStr;

use datafusion::common::{plan_datafusion_err, plan_err, DataFusionError, Result};

use crate::output::OutputFormat;

/// A parsed backslash command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Quit,
    /// `\?`, `\h`: the command list.
    Help,
    /// `\h NAME`: a function's documentation.
    FunctionHelp(String),
    ListTables,
    DescribeTable(String),
    ListFunctions(Option<String>),
    /// `\set` alone lists the variables.
    ListVariables,
    SetVariable {
        name: String,
        value: String,
    },
    /// `\timing` toggles; `\timing on|off` sets.
    Timing(Option<bool>),
    ShowPrintOptions,
    SetFormat(OutputFormat),
    /// `None`: every row.
    SetMaxRows(Option<usize>),
    Include(String),
    /// `\chart [COLUMN] [FILE.png]`: bars of the last result.
    Chart {
        column: Option<String>,
        png: Option<String>,
    },
}

/// One command as users see it: for `\?` and completion.
#[derive(Debug, Clone, Copy)]
pub struct CommandInfo {
    pub name: &'static str,
    pub arguments: &'static str,
    pub description: &'static str,
    /// Words that may follow the command (completion).
    pub words: &'static [&'static str],
}

/// Every command, in the order `\?` lists them.
pub const COMMANDS: &[CommandInfo] = &[
    CommandInfo {
        name: "\\d",
        arguments: "[NAME]",
        description: "list tables, or describe table NAME's columns",
        words: &[],
    },
    CommandInfo {
        name: "\\df",
        arguments: "[PATTERN]",
        description: "list functions (with PATTERN: those whose name contains it)",
        words: &[],
    },
    CommandInfo {
        name: "\\h",
        arguments: "[NAME]",
        description: "this help, or the documentation of function NAME",
        words: &[],
    },
    CommandInfo {
        name: "\\timing",
        arguments: "[on|off]",
        description: "show how long each statement takes",
        words: &["on", "off"],
    },
    CommandInfo {
        name: "\\pset",
        arguments: "[format table|csv|json|ndjson | maxrows N|all]",
        description: "output format, rows shown in table format",
        words: &["format", "maxrows", "table", "csv", "json", "ndjson", "all"],
    },
    CommandInfo {
        name: "\\chart",
        arguments: "[COLUMN] [FILE.png]",
        description: "the last result's COLUMN (default: its last numeric one) as bars, labelled by its first text column; with FILE.png, as a picture",
        words: &[],
    },
    CommandInfo {
        name: "\\i",
        arguments: "FILE",
        description: "run the statements of FILE",
        words: &[],
    },
    CommandInfo {
        name: "\\set",
        arguments: "[NAME VALUE]",
        description: "list variables, or set one, used as ${NAME} (--set on the command line wins)",
        words: &[],
    },
    CommandInfo {
        name: "\\q",
        arguments: "",
        description: "quit (also Ctrl-D)",
        words: &[],
    },
    CommandInfo {
        name: "\\?",
        arguments: "",
        description: "this help",
        words: &[],
    },
];

/// The text of `\?`.
pub fn help_text() -> String {
    let mut text = String::from("Statements end with ';' and may span lines. Commands:\n");
    let width = COMMANDS
        .iter()
        .map(|c| c.name.len() + c.arguments.len() + 1)
        .max()
        .unwrap_or(0);
    for command in COMMANDS {
        let usage = format!("{} {}", command.name, command.arguments);
        text.push_str(&format!("  {usage:<width$}  {}\n", command.description));
    }
    text.push_str("Ctrl-C cancels the running statement.");
    text
}

fn wrong_arguments(name: &str) -> DataFusionError {
    let usage = COMMANDS
        .iter()
        .find(|c| c.name == name)
        .map_or(String::new(), |c| format!(" (usage: {} {})", c.name, c.arguments));
    plan_datafusion_err!("wrong arguments for {name}{usage}")
}

impl FromStr for Command {
    type Err = DataFusionError;

    fn from_str(line: &str) -> Result<Self> {
        let mut words = line.split_whitespace();
        let name = words.next().unwrap_or_default();
        let args: Vec<&str> = words.collect();
        let command = match (name, args.as_slice()) {
            ("\\q", []) => Command::Quit,
            ("\\?", []) | ("\\h", []) => Command::Help,
            ("\\h", [function]) => Command::FunctionHelp(function.to_string()),
            ("\\d", []) => Command::ListTables,
            ("\\d", [table]) => Command::DescribeTable(table.to_string()),
            ("\\df", []) => Command::ListFunctions(None),
            ("\\df", [pattern]) => Command::ListFunctions(Some(pattern.to_string())),
            ("\\set", []) => Command::ListVariables,
            ("\\set", [name, value @ ..]) if !value.is_empty() => Command::SetVariable {
                name: name.to_string(),
                value: value.join(" "),
            },
            ("\\timing", []) => Command::Timing(None),
            ("\\timing", ["on"]) => Command::Timing(Some(true)),
            ("\\timing", ["off"]) => Command::Timing(Some(false)),
            ("\\pset", []) => Command::ShowPrintOptions,
            ("\\pset", ["format", format]) => Command::SetFormat(format.parse()?),
            ("\\pset", ["maxrows", "all"]) => Command::SetMaxRows(None),
            ("\\pset", ["maxrows", n]) => {
                Command::SetMaxRows(Some(n.parse().map_err(|_| {
                    plan_datafusion_err!("\\pset maxrows takes a number or 'all', not '{n}'")
                })?))
            }
            ("\\i", [file]) => Command::Include(file.to_string()),
            ("\\chart", []) => Command::Chart {
                column: None,
                png: None,
            },
            ("\\chart", [one]) if one.to_ascii_lowercase().ends_with(".png") => Command::Chart {
                column: None,
                png: Some(one.to_string()),
            },
            ("\\chart", [column]) => Command::Chart {
                column: Some(column.to_string()),
                png: None,
            },
            ("\\chart", [column, png]) if png.to_ascii_lowercase().ends_with(".png") => Command::Chart {
                column: Some(column.to_string()),
                png: Some(png.to_string()),
            },
            _ if COMMANDS.iter().any(|c| c.name == name) => return Err(wrong_arguments(name)),
            _ => return plan_err!("unknown command {name} (\\? lists the commands)"),
        };
        Ok(command)
    }
}

/// Words the REPL completes: command names and their arguments' words.
pub fn completion_words() -> impl Iterator<Item = &'static str> {
    COMMANDS
        .iter()
        .flat_map(|c| std::iter::once(c.name).chain(c.words.iter().copied()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let cases = [
            ("\\q", Command::Quit),
            ("\\?", Command::Help),
            ("\\h", Command::Help),
            ("\\h blob_dots", Command::FunctionHelp("blob_dots".into())),
            ("\\d", Command::ListTables),
            ("\\d t", Command::DescribeTable("t".into())),
            ("\\df", Command::ListFunctions(None)),
            ("\\df im", Command::ListFunctions(Some("im".into()))),
            ("\\set", Command::ListVariables),
            (
                "\\set data  some dir",
                Command::SetVariable {
                    name: "data".into(),
                    value: "some dir".into(),
                },
            ),
            ("\\timing", Command::Timing(None)),
            ("\\timing off", Command::Timing(Some(false))),
            ("\\pset", Command::ShowPrintOptions),
            ("\\pset format csv", Command::SetFormat(OutputFormat::Csv)),
            ("\\pset maxrows 5", Command::SetMaxRows(Some(5))),
            ("\\pset maxrows all", Command::SetMaxRows(None)),
            ("\\i x.sql", Command::Include("x.sql".into())),
            (
                "\\chart",
                Command::Chart {
                    column: None,
                    png: None,
                },
            ),
            (
                "\\chart n out.png",
                Command::Chart {
                    column: Some("n".into()),
                    png: Some("out.png".into()),
                },
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(line.parse::<Command>().unwrap(), expected, "{line}");
        }
    }

    #[test]
    fn bad_commands_say_why() {
        for (line, message) in [
            ("\\nonsense", "unknown command \\nonsense"),
            (
                "\\timing maybe",
                "wrong arguments for \\timing (usage: \\timing [on|off])",
            ),
            ("\\q now", "wrong arguments for \\q"),
            ("\\set x", "wrong arguments for \\set"),
            ("\\pset maxrows many", "takes a number or 'all', not 'many'"),
        ] {
            let err = line.parse::<Command>().unwrap_err();
            assert!(err.to_string().contains(message), "{line}: {err}");
        }
    }

    #[test]
    fn help_and_completion_list_every_command() {
        let help = help_text();
        for command in COMMANDS {
            assert!(help.contains(command.name), "{}", command.name);
            assert!(completion_words().any(|w| w == command.name));
        }
        assert!(completion_words().any(|w| w == "\\set"));
    }
}
