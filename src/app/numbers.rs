//! Numeric flags and negative numbers: clap reads `--k -1` as a flag `-1` ("unexpected argument
//! '-1'"). [`signed_numbers`] lets every flag that takes a value accept a negative-number token,
//! and gives each unsigned or float flag a parser that refuses it by name: "--seed must be ≥ 0,
//! got -1".

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{Arg, Command};
use std::any::TypeId;
use std::ffi::OsStr;

/// Flags whose value must be at least 1 (0 would mean an empty batch, no epochs, …) or 2.
fn min_for(flag: &str) -> u64 {
    match flag {
        "folds" => 2,
        "batch-tokens" | "max-length" | "chunk" | "max-genes" | "epochs" | "batch-size"
        | "top-n" | "n-summaries" | "n-sentences" | "n-top-genes" | "n-comps" => 1,
        _ => 0,
    }
}

/// `cmd` (and all its subcommands) with negative-number-aware numeric flags.
pub fn signed_numbers(cmd: Command) -> Command {
    cmd.mut_args(adapt).mut_subcommands(signed_numbers)
}

fn adapt(a: Arg) -> Arg {
    if !a.get_action().takes_values() {
        return a;
    }
    let Some(long) = a.get_long().map(str::to_string) else {
        return a;
    };
    let t = a.get_value_parser().type_id();
    let flag = format!("--{long}");
    let min = min_for(&long);
    let a = a.allow_negative_numbers(true);
    // `--shard -1/4` is no number, so clap took it for a flag; let `Shard` refuse it by name
    let a = if long == "shard" {
        a.allow_hyphen_values(true)
    } else {
        a
    };
    if t == TypeId::of::<usize>() {
        a.value_parser(Whole::<usize>::new(flag, min))
    } else if t == TypeId::of::<u64>() {
        a.value_parser(Whole::<u64>::new(flag, min))
    } else if t == TypeId::of::<u32>() {
        a.value_parser(Whole::<u32>::new(flag, min))
    } else if t == TypeId::of::<f64>() {
        a.value_parser(NonNegative::<f64>::new(flag))
    } else if t == TypeId::of::<f32>() {
        a.value_parser(NonNegative::<f32>::new(flag))
    } else {
        // string-typed and custom parsers (`--k 1,5`, `--top-n all`) see the token and refuse it
        a
    }
}

fn err(cmd: &Command, msg: String) -> clap::Error {
    clap::Error::raw(ErrorKind::ValueValidation, format!("{msg}\n")).with_cmd(cmd)
}

/// An unsigned whole number ≥ `min`.
#[derive(Clone)]
pub struct Whole<T> {
    flag: String,
    min: u64,
    _t: std::marker::PhantomData<T>,
}

impl<T> Whole<T> {
    pub fn new(flag: String, min: u64) -> Self {
        Self {
            flag,
            min,
            _t: std::marker::PhantomData,
        }
    }
}

impl<T> TypedValueParser for Whole<T>
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
{
    type Value = T;
    fn parse_ref(
        &self,
        cmd: &Command,
        _arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let s = value.to_string_lossy();
        let t = s.trim();
        let (flag, min) = (&self.flag, self.min);
        match t.parse::<i128>() {
            Ok(v) if v < min as i128 => Err(err(cmd, format!("{flag} must be ≥ {min}, got {t}"))),
            Ok(v) => u64::try_from(v)
                .ok()
                .and_then(|v| T::try_from(v).ok())
                .ok_or_else(|| err(cmd, format!("{flag} {t} is too large"))),
            Err(_) => Err(err(
                cmd,
                format!(
                    "{flag} must be a whole number ≥ {min}, got '{}'",
                    crate::genes::store::escape_controls(&s)
                ),
            )),
        }
    }
}

/// A finite float ≥ 0.
#[derive(Clone)]
pub struct NonNegative<T> {
    flag: String,
    _t: std::marker::PhantomData<T>,
}

impl<T> NonNegative<T> {
    pub fn new(flag: String) -> Self {
        Self {
            flag,
            _t: std::marker::PhantomData,
        }
    }
}

impl<T> TypedValueParser for NonNegative<T>
where
    T: std::str::FromStr + Into<f64> + Copy + Clone + Send + Sync + 'static,
{
    type Value = T;
    fn parse_ref(
        &self,
        cmd: &Command,
        _arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let s = value.to_string_lossy();
        let t = s.trim();
        let flag = &self.flag;
        match t.parse::<T>() {
            Ok(v) if !v.into().is_finite() => {
                Err(err(cmd, format!("{flag} must be a finite number, got {t}")))
            }
            Ok(v) if v.into() < 0.0 => Err(err(cmd, format!("{flag} must be ≥ 0, got {t}"))),
            Ok(v) => Ok(v),
            Err(_) => Err(err(
                cmd,
                format!(
                    "{flag} must be a number, got '{}'",
                    crate::genes::store::escape_controls(&s)
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct T {
        #[arg(long, default_value_t = 8192)]
        batch_tokens: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        lr: Option<f64>,
        #[arg(long)]
        name: Option<String>,
    }

    fn parse(args: &[&str]) -> Result<clap::ArgMatches, String> {
        let mut all = vec!["t"];
        all.extend_from_slice(args);
        use clap::CommandFactory;
        signed_numbers(T::command())
            .try_get_matches_from(all)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn negative_numbers_are_refused_by_flag_name() {
        let e = parse(&["--seed", "-1"]).unwrap_err();
        assert!(e.contains("--seed must be ≥ 0, got -1"), "{e}");
        let e = parse(&["--batch-tokens", "-5"]).unwrap_err();
        assert!(e.contains("--batch-tokens must be ≥ 1, got -5"), "{e}");
        let e = parse(&["--batch-tokens", "0"]).unwrap_err();
        assert!(e.contains("--batch-tokens must be ≥ 1, got 0"), "{e}");
        let e = parse(&["--lr", "-0.5"]).unwrap_err();
        assert!(e.contains("--lr must be ≥ 0, got -0.5"), "{e}");
        let e = parse(&["--lr", "nan"]).unwrap_err();
        assert!(e.contains("--lr must be a finite number"), "{e}");
        let e = parse(&["--seed", "x"]).unwrap_err();
        assert!(
            e.contains("--seed must be a whole number ≥ 0, got 'x'"),
            "{e}"
        );
        assert!(!e.contains("unexpected argument"), "{e}");
        let m = parse(&[
            "--batch-tokens",
            "64",
            "--seed",
            "3",
            "--lr",
            "0.1",
            "--name",
            "-1",
        ])
        .unwrap();
        let t = <T as clap::FromArgMatches>::from_arg_matches(&m).unwrap();
        assert_eq!((t.batch_tokens, t.seed, t.lr), (64, 3, Some(0.1)));
        assert_eq!(t.name.as_deref(), Some("-1"));
    }
}
