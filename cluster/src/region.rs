//! Regions and how far apart they are: from coordinates (great-circle distance) or from a table the
//! operator writes (e.g. measured round-trip times); the table wins where both say something.

use std::collections::HashMap;

/// A region's place on the globe, in degrees.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct Coordinates {
    /// Latitude, -90..=90.
    pub lat: f64,
    /// Longitude, -180..=180.
    pub lon: f64,
}

/// The regions a cluster knows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Regions {
    places: HashMap<String, Coordinates>,
    /// (a, b) with a < b → distance, in whatever unit the operator chose (all entries alike).
    table: HashMap<(String, String), f64>,
}

impl Regions {
    /// Regions with these coordinates and explicit distances.
    pub fn new(
        places: HashMap<String, Coordinates>,
        distances: impl IntoIterator<Item = (String, String, f64)>,
    ) -> Self {
        let table = distances
            .into_iter()
            .map(|(a, b, d)| (ordered(&a, &b), d))
            .collect();
        Self { places, table }
    }

    /// How far region `b` is from region `a`: 0 for the same region, the table's entry, else the
    /// great-circle distance in km between their coordinates, else infinitely far.
    pub fn distance(&self, a: &str, b: &str) -> f64 {
        if a == b {
            return 0.0;
        }
        if let Some(d) = self.table.get(&ordered(a, b)) {
            return *d;
        }
        match (self.places.get(a), self.places.get(b)) {
            (Some(p), Some(q)) => great_circle_km(*p, *q),
            _ => f64::INFINITY,
        }
    }
}

fn ordered(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

/// The haversine distance in km (Earth radius 6,371 km).
fn great_circle_km(p: Coordinates, q: Coordinates) -> f64 {
    let (la1, la2) = (p.lat.to_radians(), q.lat.to_radians());
    let dla = la2 - la1;
    let dlo = (q.lon - p.lon).to_radians();
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions() -> Regions {
        let places = [
            ("eu", 50.1, 8.7),   // Frankfurt
            ("us", 39.0, -77.5), // Virginia
            ("ap", 1.35, 103.8), // Singapore
        ]
        .into_iter()
        .map(|(n, lat, lon)| (n.to_string(), Coordinates { lat, lon }))
        .collect();
        Regions::new(places, [("ap".to_string(), "us".to_string(), 1.0)])
    }

    #[test]
    fn distances_come_from_the_table_then_the_coordinates() {
        let r = regions();
        assert_eq!(r.distance("eu", "eu"), 0.0);
        let eu_us = r.distance("eu", "us");
        assert!((6400.0..6700.0).contains(&eu_us), "{eu_us}");
        assert_eq!(r.distance("us", "eu"), eu_us, "symmetric");
        assert_eq!(r.distance("us", "ap"), 1.0, "the table wins");
        assert_eq!(r.distance("eu", "mars"), f64::INFINITY);
        assert_eq!(Regions::default().distance("a", "b"), f64::INFINITY);
    }
}
