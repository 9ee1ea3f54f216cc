//! Which SIMD path the CPU kernels take, decided once at run time so one x86-64 binary runs on
//! any CPU; `CELLTEXT_NO_AVX2=1` forces the portable path (tests prove both on any machine).

/// AVX2 and FMA are present and not switched off.
pub(crate) fn use_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static FLAG: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *FLAG.get_or_init(|| {
            std::env::var_os("CELLTEXT_NO_AVX2").is_none()
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
