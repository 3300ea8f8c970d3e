//! WGS84 points and great-circle distances.

use serde::{Deserialize, Serialize};

/// Mean Earth radius (IUGG), in kilometres.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// A WGS84 point in decimal degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

/// Why a pair of numbers is not a WGS84 point.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum PointError {
    #[error("latitude {0} is outside -90..=90")]
    Latitude(f64),
    #[error("longitude {0} is outside -180..=180")]
    Longitude(f64),
}

impl GeoPoint {
    /// Checks the ranges; NaN and infinities are rejected too.
    pub(crate) fn new(lat: f64, lon: f64) -> Result<GeoPoint, PointError> {
        if !(-90.0..=90.0).contains(&lat) {
            return Err(PointError::Latitude(lat));
        }
        if !(-180.0..=180.0).contains(&lon) {
            return Err(PointError::Longitude(lon));
        }
        Ok(GeoPoint { lat, lon })
    }

    /// Great-circle (haversine) distance in kilometres.
    pub fn distance_km(self, other: GeoPoint) -> f64 {
        let (lat1, lat2) = (self.lat.to_radians(), other.lat.to_radians());
        let dlat = lat2 - lat1;
        let dlon = (other.lon - self.lon).to_radians();
        let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_out_of_range_and_nan() {
        assert_eq!(GeoPoint::new(91.0, 0.0), Err(PointError::Latitude(91.0)));
        assert_eq!(
            GeoPoint::new(0.0, -180.5),
            Err(PointError::Longitude(-180.5))
        );
        assert!(GeoPoint::new(f64::NAN, 0.0).is_err());
        assert!(GeoPoint::new(34.5, 109.5).is_ok());
    }

    #[test]
    fn distance_matches_known_values() {
        let weinan = GeoPoint::new(34.521626, 109.465810).unwrap();
        let xian = GeoPoint::new(34.3416, 108.9398).unwrap();
        let d = weinan.distance_km(xian);
        // Weinan to Xi'an is about 52 km as the crow flies.
        assert!((50.0..55.0).contains(&d), "{d}");
        assert_eq!(weinan.distance_km(weinan), 0.0);
        // One degree of latitude is about 111.2 km.
        let north = GeoPoint::new(35.521626, 109.465810).unwrap();
        assert!((weinan.distance_km(north) - 111.19).abs() < 0.1);
    }
}
