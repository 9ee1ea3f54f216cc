//! Option enums and their spellings (`knn|mlp`, `cls|mean|max`, `human` alias `hs`, …), listed
//! once per enum ([`choices!`](crate::choices)): the library, the Python bindings and experiment
//! configs parse values with [`parse_choice`], and with the `cli` feature [`value_enum`] is the
//! clap value parser that calls the same function, so every front end accepts the same spellings
//! and words its errors the same way ("unknown --vote 'x'; use majority or distance"). The parser
//! does not append the possible values to a flag's `--help` line (each help text names them).

use anyhow::Result;

/// One accepted value of an option enum: its name (shown in messages), extra spellings, and the
/// variant they mean.
#[derive(Debug)]
pub struct Spelling<E: 'static> {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub value: E,
}

/// An option enum whose values are spelled as in [`Choice::CHOICES`], in the order messages list
/// them. Implement it with [`choices!`](crate::choices).
pub trait Choice: Sized + Copy + 'static {
    const CHOICES: &'static [Spelling<Self>];

    /// The name of this value (the first spelling).
    fn name(self) -> &'static str
    where
        Self: PartialEq,
    {
        Self::CHOICES
            .iter()
            .find(|s| s.value == self)
            .map_or("", |s| s.name)
    }
}

/// `impl Choice for T`: `choices!(Vote { Majority = "majority", Distance = "distance" | "dist" })`
/// (`|` adds aliases).
#[macro_export]
macro_rules! choices {
    ($ty:ty { $($variant:ident = $name:literal $(| $alias:literal)*),+ $(,)? }) => {
        impl $crate::choice::Choice for $ty {
            const CHOICES: &'static [$crate::choice::Spelling<Self>] = &[
                $($crate::choice::Spelling {
                    name: $name,
                    aliases: &[$($alias),*],
                    value: Self::$variant,
                }),+
            ];
        }
    };
}

/// The spellings of `E` for messages: "a, b or c" (aliases left out).
pub fn spellings<E: Choice>() -> String {
    let names: Vec<&str> = E::CHOICES.iter().map(|s| s.name).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

/// `s` (surrounding whitespace ignored; ASCII letter case too with `ignore_case`) as an `E`, or
/// the error "unknown WHAT 'S'; use a, b or c".
pub fn parse_choice<E: Choice>(what: &str, s: &str, ignore_case: bool) -> Result<E> {
    let t = s.trim();
    let same = |a: &str| {
        if ignore_case {
            a.eq_ignore_ascii_case(t)
        } else {
            a == t
        }
    };
    E::CHOICES
        .iter()
        .find(|c| same(c.name) || c.aliases.iter().any(|a| same(a)))
        .map(|c| c.value)
        .ok_or_else(|| anyhow::anyhow!("unknown {what} '{s}'; use {}", spellings::<E>()))
}

/// clap value parser for an option enum (`cli` feature): `#[arg(long, value_parser = value_enum::<Vote>())]`.
/// Letter case is ignored where the argument sets `ignore_case = true`.
#[cfg(feature = "cli")]
pub fn value_enum<E>() -> ValueEnumParser<E> {
    ValueEnumParser(std::marker::PhantomData)
}

/// See [`value_enum`].
#[cfg(feature = "cli")]
#[derive(Debug, Clone, Copy)]
pub struct ValueEnumParser<E>(std::marker::PhantomData<fn() -> E>);

#[cfg(feature = "cli")]
impl<E: Choice + Clone + Send + Sync + 'static> clap::builder::TypedValueParser
    for ValueEnumParser<E>
{
    type Value = E;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<E, clap::Error> {
        let flag = arg
            .and_then(|a| a.get_long())
            .map(|l| format!("--{l}"))
            .unwrap_or_else(|| "value".to_string());
        let ignore_case = arg.is_some_and(|a| a.is_ignore_case_set());
        // A `Fn(&str) -> Result<T, E>` is itself a clap value parser: its error becomes
        // "invalid value 'x' for '--flag <FLAG>': <our message>", as for any FromStr option.
        let parse = move |s: &str| parse_choice::<E>(&flag, s, ignore_case);
        parse.parse_ref(cmd, arg, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Shape {
        Round,
        Square,
        FlatTop,
    }
    crate::choices!(Shape { Round = "round", Square = "square" | "squared", FlatTop = "flat-top" });

    #[test]
    fn spellings_aliases_case_and_errors() {
        assert_eq!(spellings::<Shape>(), "round, square or flat-top");
        assert_eq!(
            parse_choice::<Shape>("--shape", " flat-top ", false).unwrap(),
            Shape::FlatTop
        );
        assert_eq!(
            parse_choice::<Shape>("--shape", "squared", false).unwrap(),
            Shape::Square
        );
        assert_eq!(
            parse_choice::<Shape>("--shape", "ROUND", true).unwrap(),
            Shape::Round
        );
        let e = parse_choice::<Shape>("--shape", "ROUND", false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown --shape 'ROUND'; use round, square or flat-top"
        );
        assert_eq!(Shape::FlatTop.name(), "flat-top");
    }

    #[cfg(feature = "cli")]
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
