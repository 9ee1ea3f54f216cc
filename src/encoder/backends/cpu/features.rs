//! Which SIMD path the CPU kernels take, decided once at run time so one x86-64 binary runs on
//! any CPU. `CELLTEXT_CPU=avx2|generic` forces a path (tests and benches prove each on any
//! machine); a forced path the CPU lacks falls back to the best one it has (never an illegal
//! instruction). `CELLTEXT_NO_AVX2=1` is the older spelling of `CELLTEXT_CPU=generic`.

/// A kernel family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimdPath {
    /// AVX2 + FMA (x86-64).
    Avx2,
    /// Portable Rust (and the `gemm` crate for f32 GEMM).
    Generic,
}

impl SimdPath {
    pub fn name(self) -> &'static str {
        match self {
            SimdPath::Avx2 => "avx2",
            SimdPath::Generic => "generic",
        }
    }
}

/// The paths this CPU can run, best first.
pub fn available_paths() -> Vec<SimdPath> {
    let mut v = Vec::new();
    if has_avx2() {
        v.push(SimdPath::Avx2);
    }
    v.push(SimdPath::Generic);
    v
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The path from the CPU and `CELLTEXT_CPU` (a value that names no path is ignored, so a typo
/// cannot disable the fast path silently: the manifest records what ran).
fn choose(forced: Option<&str>, no_avx2: bool) -> SimdPath {
    let best = available_paths()[0];
    match forced.map(str::trim) {
        Some(s) if s.eq_ignore_ascii_case("generic") => SimdPath::Generic,
        Some(s) if s.eq_ignore_ascii_case("avx2") => best,
        _ if no_avx2 => SimdPath::Generic,
        _ => best,
    }
}

/// The path every CPU kernel takes in this process.
pub fn simd_path() -> SimdPath {
    static PATH: std::sync::OnceLock<SimdPath> = std::sync::OnceLock::new();
    *PATH.get_or_init(|| {
        let forced = std::env::var("CELLTEXT_CPU").ok();
        choose(
            forced.as_deref(),
            std::env::var_os("CELLTEXT_NO_AVX2").is_some(),
        )
    })
}

/// AVX2 and FMA are present and not switched off.
pub(crate) fn use_avx2() -> bool {
    simd_path() == SimdPath::Avx2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forcing_chooses_a_path_the_cpu_has() {
        assert_eq!(choose(Some("generic"), false), SimdPath::Generic);
        assert_eq!(choose(Some(" GENERIC "), false), SimdPath::Generic);
        assert_eq!(choose(None, true), SimdPath::Generic);
        let best = available_paths()[0];
        assert_eq!(choose(None, false), best);
        assert_eq!(choose(Some("avx2"), true), best);
        assert_eq!(choose(Some("nonsense"), false), best);
        assert!(available_paths().contains(&choose(Some("avx2"), false)));
    }
}
