//! Distance matrices: great-circle (haversine) from latitude/longitude, Euclidean from planar
//! coordinates, or given explicitly. Node 0 is the depot, node `i + 1` is stop `i`.

use super::{Location, RouteError, MAX_STOPS};

/// Mean Earth radius (IUGG), metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A point on the Earth, degrees (WGS 84 latitude/longitude as a courier app reports them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

impl GeoPoint {
    pub fn new(lat: f64, lon: f64) -> Self {
        GeoPoint { lat, lon }
    }

    /// The first coordinate that is not finite or out of range (latitude in [-90, 90],
    /// longitude in [-180, 180]) with its value, or `None` when the point is valid.
    pub fn invalid_coordinate(&self) -> Option<(&'static str, f64)> {
        if !self.lat.is_finite() || !(-90.0..=90.0).contains(&self.lat) {
            return Some(("lat", self.lat));
        }
        if !self.lon.is_finite() || !(-180.0..=180.0).contains(&self.lon) {
            return Some(("lon", self.lon));
        }
        None
    }
}

/// Great-circle distance in metres (haversine formula on a sphere of radius
/// [`EARTH_RADIUS_M`]; error against the WGS 84 ellipsoid is below 0.5 %).
pub fn haversine_m(a: GeoPoint, b: GeoPoint) -> f64 {
    let (phi1, phi2) = (a.lat.to_radians(), b.lat.to_radians());
    let dphi = phi2 - phi1;
    let dlambda = (b.lon - a.lon).to_radians();
    let h = (dphi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (dlambda / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.clamp(0.0, 1.0).sqrt().asin()
}

/// A symmetric matrix of non-negative finite distances (metres) over the depot (node 0) and
/// the stops (nodes `1..=stops`).
#[derive(Clone, Debug, PartialEq)]
pub struct DistanceMatrix {
    n: usize,
    d: Vec<f64>,
}

fn check_count(stops: usize) -> Result<(), RouteError> {
    if stops > MAX_STOPS {
        return Err(RouteError::TooManyStops {
            stops,
            max: MAX_STOPS,
        });
    }
    Ok(())
}

fn location(node: usize) -> Location {
    if node == 0 {
        Location::Depot
    } else {
        Location::Stop(node - 1)
    }
}

impl DistanceMatrix {
    /// Haversine distances between the depot and the stops. Latitudes must be finite and in
    /// [-90, 90], longitudes finite and in [-180, 180].
    pub fn haversine(depot: GeoPoint, stops: &[GeoPoint]) -> Result<Self, RouteError> {
        check_count(stops.len())?;
        let points: Vec<GeoPoint> = std::iter::once(depot)
            .chain(stops.iter().copied())
            .collect();
        for (node, p) in points.iter().enumerate() {
            if let Some((field, value)) = p.invalid_coordinate() {
                return Err(RouteError::InvalidCoordinate {
                    at: location(node),
                    field,
                    value,
                });
            }
        }
        Ok(Self::build(points.len(), |i, j| {
            haversine_m(points[i], points[j])
        }))
    }

    /// Euclidean distances between planar points `(x, y)` (any unit; metres for the report to
    /// read right). Coordinates must be finite.
    pub fn euclidean(depot: (f64, f64), stops: &[(f64, f64)]) -> Result<Self, RouteError> {
        check_count(stops.len())?;
        let points: Vec<(f64, f64)> = std::iter::once(depot)
            .chain(stops.iter().copied())
            .collect();
        for (node, p) in points.iter().enumerate() {
            for (field, value) in [("x", p.0), ("y", p.1)] {
                if !value.is_finite() {
                    return Err(RouteError::InvalidCoordinate {
                        at: location(node),
                        field,
                        value,
                    });
                }
            }
        }
        let m = Self::build(points.len(), |i, j| {
            (points[i].0 - points[j].0).hypot(points[i].1 - points[j].1)
        });
        // Finite coordinates can still be too far apart for a finite distance.
        if let Some(k) = m.d.iter().position(|v| !v.is_finite()) {
            return Err(RouteError::InvalidDistance {
                from: location(k / m.n),
                to: location(k % m.n),
                value: m.d[k],
            });
        }
        Ok(m)
    }

    /// An explicit matrix, row `i` = distances from node `i` (row 0 the depot). It must be
    /// square, finite, non-negative and symmetric (within 1e-9 relative); the diagonal is
    /// ignored (taken as 0).
    pub fn from_rows(rows: &[Vec<f64>]) -> Result<Self, RouteError> {
        let n = rows.len();
        check_count(n.saturating_sub(1))?;
        let mut d = vec![0.0; n * n];
        for (i, row) in rows.iter().enumerate() {
            if row.len() != n {
                return Err(RouteError::MatrixNotSquare {
                    row: i,
                    len: row.len(),
                    expected: n,
                });
            }
            for (j, &v) in row.iter().enumerate() {
                if i == j {
                    continue;
                }
                if !v.is_finite() || v < 0.0 {
                    return Err(RouteError::InvalidDistance {
                        from: location(i),
                        to: location(j),
                        value: v,
                    });
                }
                d[i * n + j] = v;
            }
        }
        for i in 0..n {
            for j in (i + 1)..n {
                let (a, b) = (d[i * n + j], d[j * n + i]);
                if (a - b).abs() > 1e-9 * a.max(b).max(1.0) {
                    return Err(RouteError::AsymmetricMatrix {
                        from: location(i),
                        to: location(j),
                    });
                }
            }
        }
        Ok(DistanceMatrix { n, d })
    }

    fn build(n: usize, f: impl Fn(usize, usize) -> f64) -> Self {
        let mut d = vec![0.0; n * n];
        for i in 0..n {
            for j in (i + 1)..n {
                let v = f(i, j);
                d[i * n + j] = v;
                d[j * n + i] = v;
            }
        }
        DistanceMatrix { n, d }
    }

    /// The same matrix with every entry rounded to the nearest integer (TSPLIB `nint`): what a
    /// reference solver working in integer metres sees.
    pub fn rounded(&self) -> Self {
        DistanceMatrix {
            n: self.n,
            d: self.d.iter().map(|v| v.round()).collect(),
        }
    }

    /// Number of nodes (depot + stops).
    pub fn nodes(&self) -> usize {
        self.n
    }

    /// Number of stops (nodes less the depot).
    pub fn stops(&self) -> usize {
        self.n.saturating_sub(1)
    }

    /// Distance between nodes `i` and `j` (0 = depot, `k + 1` = stop `k`); 0 out of range.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        if i < self.n && j < self.n {
            self.d[i * self.n + j]
        } else {
            0.0
        }
    }

    pub(crate) fn raw(&self) -> &[f64] {
        &self.d
    }
}
