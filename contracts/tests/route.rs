//! Route optimisation: exactness on small runs (against Held–Karp), permutation and
//! determinism properties, input errors, time windows and cold-chain priority.

#![allow(clippy::unwrap_used, clippy::needless_range_loop)]

/// Named `route::…` so that `cargo test -p pharmalink-contracts route` selects these.
mod route {
    use pharmalink_contracts::route::{
        solve, solve_geo, Budget, DistanceMatrix, GeoPoint, Location, RouteError, RouteOptions,
        StopConstraints, TourEnd, MAX_STOPS,
    };
    use proptest::prelude::*;

    /// SplitMix64 for the test instances.
    struct Gen(u64);
    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Exact optimum by Held–Karp dynamic programming over subsets of stops.
    fn held_karp(m: &DistanceMatrix, end: TourEnd) -> f64 {
        let s = m.stops();
        if s == 0 {
            return 0.0;
        }
        let full = (1usize << s) - 1;
        let mut dp = vec![f64::INFINITY; (full + 1) * s];
        for j in 0..s {
            dp[(1 << j) * s + j] = m.get(0, j + 1);
        }
        for mask in 1..=full {
            for j in 0..s {
                let cur = dp[mask * s + j];
                if mask & (1 << j) == 0 || !cur.is_finite() {
                    continue;
                }
                for k in 0..s {
                    if mask & (1 << k) != 0 {
                        continue;
                    }
                    let next = mask | (1 << k);
                    let v = cur + m.get(j + 1, k + 1);
                    if v < dp[next * s + k] {
                        dp[next * s + k] = v;
                    }
                }
            }
        }
        (0..s)
            .map(|j| {
                dp[full * s + j]
                    + match end {
                        TourEnd::ReturnToDepot => m.get(j + 1, 0),
                        TourEnd::EndAtLastStop => 0.0,
                    }
            })
            .fold(f64::INFINITY, f64::min)
    }

    fn route_length(m: &DistanceMatrix, order: &[usize], end: TourEnd) -> f64 {
        let mut prev = 0;
        let mut total = 0.0;
        for &s in order {
            total += m.get(prev, s + 1);
            prev = s + 1;
        }
        if end == TourEnd::ReturnToDepot {
            total += m.get(prev, 0);
        }
        total
    }

    fn assert_permutation(order: &[usize], stops: usize) {
        let mut sorted = order.to_vec();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..stops).collect::<Vec<_>>(),
            "not a permutation: {order:?}"
        );
    }

    fn euclidean_instance(g: &mut Gen, stops: usize, integer: bool) -> DistanceMatrix {
        let pts: Vec<(f64, f64)> = (0..=stops)
            .map(|_| (g.unit() * 10_000.0, g.unit() * 10_000.0))
            .collect();
        let m = DistanceMatrix::euclidean(pts[0], &pts[1..]).unwrap();
        if integer {
            m.rounded()
        } else {
            m
        }
    }

    fn geo_instance(g: &mut Gen, stops: usize) -> DistanceMatrix {
        let pts: Vec<GeoPoint> = (0..=stops)
            .map(|_| {
                GeoPoint::new(
                    52.52 + (g.unit() - 0.5) * 0.27,
                    13.40 + (g.unit() - 0.5) * 0.44,
                )
            })
            .collect();
        DistanceMatrix::haversine(pts[0], &pts[1..]).unwrap()
    }

    #[test]
    fn given_small_runs_when_solved_then_the_tour_is_optimal() {
        let mut g = Gen(2026);
        let mut checked = 0;
        for round in 0..40 {
            for stops in [4usize, 5, 6, 7, 8, 9, 10, 11] {
                let m = match round % 3 {
                    0 => euclidean_instance(&mut g, stops, false),
                    1 => euclidean_instance(&mut g, stops, true),
                    _ => geo_instance(&mut g, stops),
                };
                for end in [TourEnd::ReturnToDepot, TourEnd::EndAtLastStop] {
                    let opts = RouteOptions {
                        end,
                        seed: round,
                        ..RouteOptions::default()
                    };
                    let r = solve(&m, &opts).unwrap();
                    assert_permutation(&r.order, stops);
                    let best = held_karp(&m, end);
                    assert!(
                        (route_length(&m, &r.order, end) - r.distance_m).abs() < 1e-6,
                        "reported distance is the order's length"
                    );
                    assert!(
                        r.distance_m <= best + 1e-9 * best.max(1.0),
                        "round {round}, {stops} stops, {end:?}: {} > optimum {best}",
                        r.distance_m
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 640);
    }

    #[test]
    fn given_a_random_symmetric_non_metric_matrix_when_solved_then_the_tour_is_optimal() {
        // No triangle inequality: candidate pruning is a heuristic there, the kicks make up.
        let mut g = Gen(7);
        for round in 0..30u64 {
            let stops = 6 + (round as usize % 6);
            let n = stops + 1;
            let mut rows = vec![vec![0.0; n]; n];
            for i in 0..n {
                for j in (i + 1)..n {
                    let v = (g.next() % 1000) as f64;
                    rows[i][j] = v;
                    rows[j][i] = v;
                }
            }
            let m = DistanceMatrix::from_rows(&rows).unwrap();
            for end in [TourEnd::ReturnToDepot, TourEnd::EndAtLastStop] {
                let r = solve(
                    &m,
                    &RouteOptions {
                        end,
                        seed: round,
                        ..RouteOptions::default()
                    },
                )
                .unwrap();
                let best = held_karp(&m, end);
                assert!(
                    r.distance_m <= best + 1e-9,
                    "round {round}: {} > {best}",
                    r.distance_m
                );
            }
        }
    }

    /// The objective, written out independently of the library: distance, plus lateness
    /// (arrival after `latest`) and cold-chain service start times, weighted.
    fn objective(m: &DistanceMatrix, order: &[usize], opts: &RouteOptions) -> f64 {
        let (mut t, mut dist, mut late, mut cold, mut prev) = (0.0, 0.0, 0.0, 0.0, 0);
        for &s in order {
            let leg = m.get(prev, s + 1);
            dist += leg;
            let arrival = t + leg / opts.speed_mps;
            let c = opts.stops[s];
            let start = c.earliest_s.map_or(arrival, |e| arrival.max(e));
            late += c.latest_s.map_or(0.0, |l| (arrival - l).max(0.0));
            if c.cold_chain {
                cold += start;
            }
            t = start + c.service_s;
            prev = s + 1;
        }
        if opts.end == TourEnd::ReturnToDepot {
            dist += m.get(prev, 0);
        }
        dist + opts.lateness_weight * late + opts.cold_chain_weight * cold
    }

    fn permutations(k: usize) -> Vec<Vec<usize>> {
        if k == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in permutations(k - 1) {
            for i in 0..=p.len() {
                let mut q = p.clone();
                q.insert(i, k - 1);
                out.push(q);
            }
        }
        out
    }

    #[test]
    fn given_windows_and_cold_chain_on_small_runs_when_solved_then_the_objective_is_optimal() {
        let mut g = Gen(314);
        for round in 0..60u64 {
            let stops = 4 + (round as usize % 5);
            let m = euclidean_instance(&mut g, stops, true);
            let constraints: Vec<StopConstraints> = (0..stops)
                .map(|_| {
                    let windowed = g.next() % 2 == 0;
                    let earliest = g.unit() * 2_000.0;
                    StopConstraints {
                        earliest_s: windowed.then_some(earliest),
                        latest_s: windowed.then_some(earliest + 300.0 + g.unit() * 900.0),
                        service_s: (g.next() % 120) as f64,
                        cold_chain: g.next() % 4 == 0,
                    }
                })
                .collect();
            for end in [TourEnd::ReturnToDepot, TourEnd::EndAtLastStop] {
                let opts = RouteOptions {
                    end,
                    seed: round,
                    lateness_weight: 10.0,
                    cold_chain_weight: 2.0,
                    stops: constraints.clone(),
                    ..RouteOptions::default()
                };
                let r = solve(&m, &opts).unwrap();
                assert_permutation(&r.order, stops);
                let mine = objective(&m, &r.order, &opts);
                assert!((mine - r.objective).abs() < 1e-6 * mine.max(1.0));
                let best = permutations(stops)
                    .iter()
                    .map(|p| objective(&m, p, &opts))
                    .fold(f64::INFINITY, f64::min);
                assert!(
                    mine <= best + 1e-6 * best.max(1.0),
                    "round {round}, {stops} stops, {end:?}: {mine} > optimum {best}"
                );
                let late: Vec<usize> = r
                    .visits
                    .iter()
                    .filter(|v| v.late_s > 0.0)
                    .map(|v| v.stop)
                    .collect();
                assert_eq!(late, r.windows_violated);
            }
        }
    }

    #[test]
    fn same_input_and_seed_give_the_same_route() {
        let mut g = Gen(99);
        let m = euclidean_instance(&mut g, 300, false);
        let opts = RouteOptions {
            seed: 42,
            budget: Budget {
                kicks: Some(5_000),
                penalty_evals: None,
            },
            ..RouteOptions::default()
        };
        let a = solve(&m, &opts).unwrap();
        let b = solve(&m, &opts).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.kicks, 5_000);
        let c = solve(&m, &RouteOptions { seed: 43, ..opts }).unwrap();
        assert_permutation(&c.order, 300);
    }

    #[test]
    fn etas_follow_distance_over_speed_and_service_time() {
        // Given stops 1 km apart on a line, 10 m/s and 60 s of service each,
        let stops: Vec<(f64, f64)> = (1..=3).map(|i| (f64::from(i) * 1000.0, 0.0)).collect();
        let m = DistanceMatrix::euclidean((0.0, 0.0), &stops).unwrap();
        let opts = RouteOptions {
            end: TourEnd::EndAtLastStop,
            speed_mps: 10.0,
            stops: vec![
                StopConstraints {
                    service_s: 60.0,
                    ..StopConstraints::default()
                };
                3
            ],
            ..RouteOptions::default()
        };
        // when solved,
        let r = solve(&m, &opts).unwrap();
        // then the courier drives outwards and arrives every 160 s.
        assert_eq!(r.order, vec![0, 1, 2]);
        let arrivals: Vec<f64> = r.visits.iter().map(|v| v.arrival_s).collect();
        assert_eq!(arrivals, vec![100.0, 260.0, 420.0]);
        assert_eq!(r.end_s, 480.0);
        assert!(r.windows_violated.is_empty());
    }

    /// Twelve stops on a circle of radius 2 km around the depot; a distance-optimal tour goes
    /// round the circle.
    fn circle() -> (DistanceMatrix, usize) {
        let n = 12;
        let stops: Vec<(f64, f64)> = (0..n)
            .map(|i| {
                let a = i as f64 / n as f64 * std::f64::consts::TAU;
                (2000.0 * a.cos(), 2000.0 * a.sin())
            })
            .collect();
        (DistanceMatrix::euclidean((0.0, 0.0), &stops).unwrap(), n)
    }

    fn position(order: &[usize], stop: usize) -> usize {
        order.iter().position(|&s| s == stop).unwrap()
    }

    #[test]
    fn given_a_tight_window_when_solved_then_the_stop_is_served_in_time() {
        let (m, n) = circle();
        let free = solve(&m, &RouteOptions::default()).unwrap();
        // Given the stop visited last in the distance-optimal tour must be reached within 10 min,
        let target = *free.order.last().unwrap();
        let mut stops = vec![StopConstraints::default(); n];
        stops[target].latest_s = Some(600.0);
        let opts = RouteOptions {
            stops,
            ..RouteOptions::default()
        };
        // when solved,
        let r = solve(&m, &opts).unwrap();
        // then it is visited early, on time, and the route is no shorter than the free one.
        assert_permutation(&r.order, n);
        assert!(r.windows_violated.is_empty(), "{:?}", r.visits);
        let v = r.visits.iter().find(|v| v.stop == target).unwrap();
        assert!(v.arrival_s <= 600.0);
        assert!(r.distance_m >= free.distance_m - 1e-9);
    }

    #[test]
    fn given_an_impossible_window_when_solved_then_it_is_reported_violated() {
        let (m, n) = circle();
        let mut stops = vec![StopConstraints::default(); n];
        // 2 km away at 30 km/h is 240 s: a 60 s deadline cannot be met.
        stops[5].latest_s = Some(60.0);
        let r = solve(
            &m,
            &RouteOptions {
                stops,
                ..RouteOptions::default()
            },
        )
        .unwrap();
        assert_eq!(r.windows_violated, vec![5]);
        assert_eq!(r.order[0], 5, "the late stop is at least served first");
        let v = r.visits[0];
        assert!((v.late_s - (v.arrival_s - 60.0)).abs() < 1e-9 && v.late_s > 0.0);
    }

    #[test]
    fn given_an_early_window_when_arriving_before_it_then_the_courier_waits() {
        let stops = [(1000.0, 0.0)];
        let m = DistanceMatrix::euclidean((0.0, 0.0), &stops).unwrap();
        let r = solve(
            &m,
            &RouteOptions {
                speed_mps: 10.0,
                stops: vec![StopConstraints {
                    earliest_s: Some(300.0),
                    service_s: 30.0,
                    ..StopConstraints::default()
                }],
                ..RouteOptions::default()
            },
        )
        .unwrap();
        let v = r.visits[0];
        assert_eq!(
            (v.arrival_s, v.start_s, v.departure_s),
            (100.0, 300.0, 330.0)
        );
        assert_eq!(r.end_s, 430.0);
    }

    #[test]
    fn given_a_cold_chain_stop_when_weighted_then_it_is_visited_first() {
        let (m, n) = circle();
        let free = solve(&m, &RouteOptions::default()).unwrap();
        let cold = free.order[n / 2];
        let mut stops = vec![StopConstraints::default(); n];
        stops[cold].cold_chain = true;
        // Given no weight, the cold-chain flag changes nothing but the objective;
        let r0 = solve(
            &m,
            &RouteOptions {
                stops: stops.clone(),
                cold_chain_weight: 0.0,
                ..RouteOptions::default()
            },
        )
        .unwrap();
        assert!((r0.distance_m - free.distance_m).abs() < 1e-6);
        // given a heavy weight, when solved, then the cold-chain stop comes first.
        let r = solve(
            &m,
            &RouteOptions {
                stops,
                cold_chain_weight: 50.0,
                ..RouteOptions::default()
            },
        )
        .unwrap();
        assert_permutation(&r.order, n);
        assert_eq!(position(&r.order, cold), 0, "{:?}", r.order);
        // and with a light weight it moves earlier without a long detour.
        let mut stops = vec![StopConstraints::default(); n];
        stops[cold].cold_chain = true;
        let light = solve(
            &m,
            &RouteOptions {
                stops,
                cold_chain_weight: 1.0,
                ..RouteOptions::default()
            },
        )
        .unwrap();
        assert!(position(&light.order, cold) < n / 2);
    }

    #[test]
    fn bad_coordinates_name_the_stop_and_the_field() {
        let ok = GeoPoint::new(52.5, 13.4);
        let e = DistanceMatrix::haversine(ok, &[ok, GeoPoint::new(91.0, 0.0)]).unwrap_err();
        assert_eq!(
            e,
            RouteError::InvalidCoordinate {
                at: Location::Stop(1),
                field: "lat",
                value: 91.0
            }
        );
        assert_eq!(
            e.to_string(),
            "stop 1: lat = 91 is out of range or not finite"
        );
        let e = DistanceMatrix::haversine(GeoPoint::new(0.0, f64::NAN), &[ok]).unwrap_err();
        assert!(matches!(
            e,
            RouteError::InvalidCoordinate {
                at: Location::Depot,
                field: "lon",
                ..
            }
        ));
        let e = DistanceMatrix::haversine(ok, &[GeoPoint::new(0.0, -180.5)]).unwrap_err();
        assert!(matches!(
            e,
            RouteError::InvalidCoordinate {
                at: Location::Stop(0),
                field: "lon",
                ..
            }
        ));
        let e = DistanceMatrix::euclidean((0.0, 0.0), &[(1.0, f64::INFINITY)]).unwrap_err();
        assert!(matches!(
            e,
            RouteError::InvalidCoordinate {
                at: Location::Stop(0),
                field: "y",
                ..
            }
        ));
        let e = DistanceMatrix::euclidean((-1e308, 0.0), &[(1e308, 0.0)]).unwrap_err();
        assert!(matches!(
            e,
            RouteError::InvalidDistance {
                from: Location::Depot,
                to: Location::Stop(0),
                ..
            }
        ));
        let many = vec![ok; MAX_STOPS + 1];
        assert!(matches!(
            DistanceMatrix::haversine(ok, &many),
            Err(RouteError::TooManyStops { .. })
        ));
    }

    #[test]
    fn bad_matrices_and_options_are_typed_errors() {
        let e = DistanceMatrix::from_rows(&[vec![0.0, 1.0], vec![1.0]]).unwrap_err();
        assert!(matches!(
            e,
            RouteError::MatrixNotSquare {
                row: 1,
                len: 1,
                expected: 2
            }
        ));
        let e = DistanceMatrix::from_rows(&[vec![0.0, -1.0], vec![-1.0, 0.0]]).unwrap_err();
        assert!(matches!(
            e,
            RouteError::InvalidDistance {
                from: Location::Depot,
                to: Location::Stop(0),
                ..
            }
        ));
        let e = DistanceMatrix::from_rows(&[vec![0.0, 1.0], vec![2.0, 0.0]]).unwrap_err();
        assert!(matches!(e, RouteError::AsymmetricMatrix { .. }));

        let m = DistanceMatrix::euclidean((0.0, 0.0), &[(1.0, 0.0), (2.0, 0.0)]).unwrap();
        let with = |f: &dyn Fn(&mut RouteOptions)| {
            let mut o = RouteOptions::default();
            f(&mut o);
            solve(&m, &o).unwrap_err()
        };
        assert_eq!(
            with(&|o| o.stops = vec![StopConstraints::default()]),
            RouteError::ConstraintCount {
                expected: 2,
                got: 1
            }
        );
        let e = with(&|o| {
            o.stops = vec![StopConstraints::default(); 2];
            o.stops[1].earliest_s = Some(100.0);
            o.stops[1].latest_s = Some(50.0);
        });
        assert!(matches!(
            e,
            RouteError::InvalidConstraint {
                stop: 1,
                field: "latest_s",
                ..
            }
        ));
        let e = with(&|o| {
            o.stops = vec![StopConstraints::default(); 2];
            o.stops[0].service_s = f64::NAN;
        });
        assert!(matches!(
            e,
            RouteError::InvalidConstraint {
                stop: 0,
                field: "service_s",
                ..
            }
        ));
        assert!(matches!(
            with(&|o| o.speed_mps = 0.0),
            RouteError::InvalidOption {
                field: "speed_mps",
                ..
            }
        ));
        assert!(matches!(
            with(&|o| o.lateness_weight = -1.0),
            RouteError::InvalidOption {
                field: "lateness_weight",
                ..
            }
        ));
    }

    #[test]
    fn duplicate_points_and_a_zero_budget_still_give_a_permutation() {
        let same = vec![GeoPoint::new(48.85, 2.35); 30];
        for end in [TourEnd::ReturnToDepot, TourEnd::EndAtLastStop] {
            let r = solve_geo(
                GeoPoint::new(48.85, 2.35),
                &same,
                &RouteOptions {
                    end,
                    ..RouteOptions::default()
                },
            )
            .unwrap();
            assert_permutation(&r.order, 30);
            assert_eq!(r.distance_m, 0.0);
        }
        let mut g = Gen(3);
        let m = euclidean_instance(&mut g, 50, false);
        let r = solve(
            &m,
            &RouteOptions {
                budget: Budget {
                    kicks: Some(0),
                    penalty_evals: Some(0),
                },
                ..RouteOptions::default()
            },
        )
        .unwrap();
        assert_permutation(&r.order, 50);
        assert_eq!(r.kicks, 0);
    }

    #[test]
    fn huge_distances_on_an_open_tour_terminate() {
        // The open tour's dummy node sits at ~n × 1e9 from every stop: move gains are rounded
        // at that scale and must not make the search cycle.
        let mut g = Gen(11);
        let n = 301;
        let mut rows = vec![vec![0.0; n]; n];
        for i in 0..n {
            for j in (i + 1)..n {
                let v = 1e9 * g.unit();
                rows[i][j] = v;
                rows[j][i] = v;
            }
        }
        let m = DistanceMatrix::from_rows(&rows).unwrap();
        let r = solve(
            &m,
            &RouteOptions {
                end: TourEnd::EndAtLastStop,
                budget: Budget {
                    kicks: Some(3_000),
                    penalty_evals: None,
                },
                ..RouteOptions::default()
            },
        )
        .unwrap();
        assert_permutation(&r.order, n - 1);
    }

    #[test]
    fn empty_and_tiny_runs() {
        let m = DistanceMatrix::euclidean((0.0, 0.0), &[]).unwrap();
        let r = solve(&m, &RouteOptions::default()).unwrap();
        assert!(r.order.is_empty() && r.distance_m == 0.0);
        let m = DistanceMatrix::euclidean((0.0, 0.0), &[(3.0, 4.0)]).unwrap();
        let r = solve(&m, &RouteOptions::default()).unwrap();
        assert_eq!((r.order.clone(), r.distance_m), (vec![0], 10.0));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn the_route_is_always_a_permutation(
            pts in prop::collection::vec((-89.0f64..89.0, -179.0f64..179.0), 1..80),
            open in any::<bool>(),
            seed in any::<u64>(),
            windows in prop::collection::vec(prop::option::of((0.0f64..5_000.0, 0.0f64..20_000.0, any::<bool>())), 80),
        ) {
            let depot = GeoPoint::new(pts[0].0, pts[0].1);
            let stops: Vec<GeoPoint> = pts[1..].iter().map(|&(a, b)| GeoPoint::new(a, b)).collect();
            let m = DistanceMatrix::haversine(depot, &stops).unwrap();
            let constraints: Vec<StopConstraints> = windows
                .iter()
                .take(stops.len())
                .map(|w| match *w {
                    Some((e, span, cold)) => StopConstraints {
                        earliest_s: Some(e),
                        latest_s: Some(e + span),
                        service_s: 120.0,
                        cold_chain: cold,
                    },
                    None => StopConstraints::default(),
                })
                .collect();
            let opts = RouteOptions {
                end: if open { TourEnd::EndAtLastStop } else { TourEnd::ReturnToDepot },
                seed,
                budget: Budget { kicks: Some(500), penalty_evals: Some(5_000) },
                stops: if seed % 2 == 0 { constraints } else { Vec::new() },
                ..RouteOptions::default()
            };
            let r = solve(&m, &opts).unwrap();
            assert_permutation(&r.order, stops.len());
            prop_assert_eq!(r.visits.len(), stops.len());
            prop_assert!((route_length(&m, &r.order, opts.end) - r.distance_m).abs() < 1e-6 * r.distance_m.max(1.0));
            let mut last = 0.0;
            for v in &r.visits {
                prop_assert!(v.arrival_s >= last && v.start_s >= v.arrival_s && v.departure_s >= v.start_s);
                last = v.departure_s;
            }
        }
    }
}
