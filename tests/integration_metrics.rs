//! Batch ASW, iLISI and cLISI against scib-metrics 0.5.10
//! (`tests/fixtures/integration/make_integration_ref.py`). Tolerances: batch ASW 1e-5 absolute
//! (scib-metrics computes distances in float32); iLISI / cLISI 1e-3 absolute (its perplexity
//! search runs in float32 and stops at |ΔH| < 1e-5).

use celltext::eval::integration::{batch_asw, ilisi_clisi, knn, IntegrationScores};

#[test]
fn integration_scores_match_scib_metrics() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/integration/ref.json"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let ints = |k: &str| -> Vec<usize> {
        r[k].as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect()
    };
    let (labels, batches) = (ints("labels"), ints("batches"));
    let n = labels.len();
    for case in r["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let dim = case["dim"].as_u64().unwrap() as usize;
        let x: Vec<f32> = case["x"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let asw = batch_asw(&x, n, dim, &labels, &batches).unwrap();
        let want = case["batch_asw"].as_f64().unwrap();
        assert!(
            (asw - want).abs() < 1e-5,
            "{name}: batch ASW {asw} vs {want}"
        );
        for l in case["lisi"].as_array().unwrap() {
            let k = l["k"].as_u64().unwrap() as usize;
            let (idx, d) = knn(&x, n, dim, k);
            let (il, cl) = ilisi_clisi(&idx, &d, k, &labels, &batches);
            let (wi, wc) = (l["ilisi"].as_f64().unwrap(), l["clisi"].as_f64().unwrap());
            assert!((il - wi).abs() < 1e-3, "{name} k={k}: iLISI {il} vs {wi}");
            assert!((cl - wc).abs() < 1e-3, "{name} k={k}: cLISI {cl} vs {wc}");
            if k == 90 {
                let s = IntegrationScores::compute(&x, n, dim, &labels, &batches, k).unwrap();
                assert_eq!(
                    (s.batch_asw, s.ilisi, s.clisi, s.n_batches),
                    (asw, il, cl, 3)
                );
            }
        }
    }
}

#[test]
fn integration_scores_refuse_bad_input() {
    let x = vec![0f32; 8];
    assert!(IntegrationScores::compute(&x, 4, 2, &[0, 0, 1, 1], &[0, 0, 0, 0], 4).is_err());
    assert!(IntegrationScores::compute(&x, 4, 2, &[0, 0, 1], &[0, 1, 0, 1], 4).is_err());
    // no label has two batches
    assert!(batch_asw(&x, 4, 2, &[0, 0, 1, 1], &[0, 0, 1, 1]).is_err());
}
