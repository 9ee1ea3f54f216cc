//! One way to read option enums (`--method knn|mlp`, `--pooling cls|mean|max`, …): each enum
//! derives `clap::ValueEnum`, which holds its spellings (aliases included), and [`value_enum`] is
//! the clap value parser for it. Unlike clap's own enum parser it keeps celltext's error wording
//! ("unknown --vote 'x'; use majority or distance") and does not append the possible values to the
//! flag's `--help` line (each flag's help text already names them). [`parse_value`] gives the same
//! wording where a value comes from elsewhere, such as an experiment config.

use std::ffi::OsStr;
use std::marker::PhantomData;

use anyhow::Result;
use clap::builder::TypedValueParser;
use clap::ValueEnum;

/// The spellings of `E` for messages: "a, b or c" (aliases left out).
fn spellings<E: ValueEnum>() -> String {
    let names: Vec<String> = E::value_variants()
        .iter()
        .filter_map(|v| v.to_possible_value())
        .filter(|p| !p.is_hide_set())
        .map(|p| p.get_name().to_string())
        .collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

/// `s` (surrounding whitespace ignored; letter case too with `ignore_case`) as an `E`, or the
/// error "unknown FLAG 'S'; use a, b or c".
pub fn parse_value<E: ValueEnum>(flag: &str, s: &str, ignore_case: bool) -> Result<E> {
    E::from_str(s.trim(), ignore_case)
        .map_err(|_| anyhow::anyhow!("unknown {flag} '{s}'; use {}", spellings::<E>()))
}

/// clap value parser for an option enum: `#[arg(long, value_parser = value_enum::<Vote>())]`.
/// Letter case is ignored where the argument sets `ignore_case = true`.
pub fn value_enum<E>() -> ValueEnumParser<E> {
    ValueEnumParser(PhantomData)
}

/// See [`value_enum`].
#[derive(Debug, Clone, Copy)]
pub struct ValueEnumParser<E>(PhantomData<fn() -> E>);

impl<E: ValueEnum + Clone + Send + Sync + 'static> TypedValueParser for ValueEnumParser<E> {
    type Value = E;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<E, clap::Error> {
        let flag = arg
            .and_then(|a| a.get_long())
            .map(|l| format!("--{l}"))
            .unwrap_or_else(|| "value".to_string());
        let ignore_case = arg.is_some_and(|a| a.is_ignore_case_set());
        // A `Fn(&str) -> Result<T, E>` is itself a clap value parser: its error becomes
        // "invalid value 'x' for '--flag <FLAG>': <our message>", as for any FromStr option.
        let parse = move |s: &str| parse_value::<E>(&flag, s, ignore_case);
        parse.parse_ref(cmd, arg, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
    enum Shape {
        Round,
        #[value(alias = "squared")]
        Square,
        FlatTop,
    }

    #[test]
    fn spellings_aliases_case_and_errors() {
        assert_eq!(spellings::<Shape>(), "round, square or flat-top");
        assert_eq!(
            parse_value::<Shape>("--shape", " flat-top ", false).unwrap(),
            Shape::FlatTop
        );
        assert_eq!(
            parse_value::<Shape>("--shape", "squared", false).unwrap(),
            Shape::Square
        );
        assert_eq!(
            parse_value::<Shape>("--shape", "ROUND", true).unwrap(),
            Shape::Round
        );
        let e = parse_value::<Shape>("--shape", "ROUND", false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown --shape 'ROUND'; use round, square or flat-top"
        );
    }

    #[test]
    fn clap_error_names_the_flag_and_the_choices() {
        #[derive(clap::Parser, Debug)]
        struct Cli {
            #[arg(long, default_value = "round", value_parser = value_enum::<Shape>())]
            shape: Shape,
            #[arg(long, ignore_case = true, value_parser = value_enum::<Shape>())]
            other: Option<Shape>,
        }
        use clap::Parser;
        assert_eq!(Cli::try_parse_from(["x"]).unwrap().shape, Shape::Round);
        let c = Cli::try_parse_from(["x", "--shape", "square", "--other", "Flat-Top"]).unwrap();
        assert_eq!((c.shape, c.other), (Shape::Square, Some(Shape::FlatTop)));
        let e = Cli::try_parse_from(["x", "--shape", "oval"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid value 'oval' for '--shape <SHAPE>': unknown --shape 'oval'; use round, square or flat-top"), "{e}");
        // the possible values are not listed by clap (in the error or in --help)
        assert!(!e.contains("possible values"), "{e}");
        let help = <Cli as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        assert!(!help.contains("possible values"), "{help}");
    }
}
