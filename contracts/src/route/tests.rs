use super::*;

#[test]
fn open_tour_starts_at_the_depot_and_never_visits_the_dummy() {
    // Stops on a line east of the depot: the open path runs outwards.
    let stops: Vec<(f64, f64)> = (1..=20).map(|i| (f64::from(i) * 100.0, 0.0)).collect();
    let m = DistanceMatrix::euclidean((0.0, 0.0), &stops).unwrap();
    let opts = RouteOptions {
        end: TourEnd::EndAtLastStop,
        ..RouteOptions::default()
    };
    let r = solve(&m, &opts).unwrap();
    assert_eq!(r.order, (0..20).collect::<Vec<_>>());
    assert!((r.distance_m - 2000.0).abs() < 1e-9);
}

#[test]
fn default_kicks_scale_with_size() {
    assert!(default_kicks(10) < default_kicks(1000));
}

#[test]
fn incremental_objective_matches_full() {
    let mut g = SplitMix64::new(5);
    let n = 120;
    let pts: Vec<(f64, f64)> = (0..=n)
        .map(|_| (g.below(30_000) as f64, g.below(30_000) as f64))
        .collect();
    let m = DistanceMatrix::euclidean(pts[0], &pts[1..]).unwrap();
    let stops: Vec<StopConstraints> = (0..n)
        .map(|i| StopConstraints {
            earliest_s: (i % 3 == 0).then_some((i * 97 % 20_000) as f64),
            latest_s: (i % 3 == 0).then_some((i * 97 % 20_000) as f64 + 3600.0),
            service_s: 60.0,
            cold_chain: i % 7 == 0,
        })
        .collect();
    let opts = RouteOptions {
        stops,
        ..RouteOptions::default()
    };
    let eval = Evaluator { m: &m, opts: &opts };
    let mut order: Vec<u32> = (1..=n as u32).collect();
    let mut prefix = Vec::new();
    for round in 0..200 {
        eval.prefix(&order, &mut prefix);
        let i = g.below(n - 1);
        let j = i + 1 + g.below(n - 1 - i);
        let mut cand = order.clone();
        cand[i..=j].reverse();
        let full = eval.objective(&cand);
        let inc = eval.objective_from(&cand, i, &prefix);
        assert_eq!(full, inc, "round {round}");
        order = cand;
    }
    let base = solve(
        &m,
        &RouteOptions {
            stops: vec![],
            ..opts.clone()
        },
    )
    .unwrap();
    let r = solve(&m, &opts).unwrap();
    let base_order: Vec<u32> = base.order.iter().map(|&s| s as u32 + 1).collect();
    assert!(
        r.objective <= eval.objective(&base_order) + 1e-6,
        "{} vs {}",
        r.objective,
        eval.objective(&base_order)
    );
}
