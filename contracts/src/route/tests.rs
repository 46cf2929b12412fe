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
