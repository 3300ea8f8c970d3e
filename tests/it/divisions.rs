//! `MatchService.ListDivisions` over gRPC: the city's 11 counties, a
//! county's towns, a town's villages, each with its name, level and point;
//! a malformed code is INVALID_ARGUMENT naming `parent_code`, an unknown
//! one NOT_FOUND.

use crate::common::*;
use tonic::Code;
use tonic_types::StatusExt;
use xingweinong::pb;

async fn children(parent: &str) -> Result<Vec<pb::Division>, tonic::Status> {
    let mut matcher = MatchClient::new(channel(shared_server()).await);
    let request = pb::ListDivisionsRequest {
        parent_code: parent.into(),
    };
    matcher
        .list_divisions(request)
        .await
        .map(|r| r.into_inner().divisions)
}

/// Every division is of `level`, under `prefix`, has a name and a point in
/// Weinan, and they come ordered by code.
fn check(divisions: &[pb::Division], level: pb::DivisionLevel, prefix: &str) {
    assert!(!divisions.is_empty(), "none under {prefix}");
    for d in divisions {
        assert_eq!(d.level, level as i32, "{d:?}");
        assert!(d.code.len() == 12 && d.code.starts_with(prefix), "{d:?}");
        assert!(!d.name.is_empty(), "{d:?}");
        let p = d.point.as_ref().expect("a point");
        assert!(
            (34.0..36.0).contains(&p.lat) && (108.5..111.0).contains(&p.lon),
            "{d:?}"
        );
    }
    let codes: Vec<&str> = divisions.iter().map(|d| d.code.as_str()).collect();
    assert!(codes.windows(2).all(|w| w[0] < w[1]), "ordered by code");
}

#[tokio::test]
async fn the_city_lists_its_eleven_counties() {
    let counties = children("").await.unwrap();
    check(&counties, pb::DivisionLevel::County, "6105");
    let names: Vec<&str> = counties.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "临渭区",
            "华州区",
            "潼关县",
            "大荔县",
            "合阳县",
            "澄城县",
            "蒲城县",
            "白水县",
            "富平县",
            "韩城市",
            "华阴市"
        ]
    );
    assert_eq!(counties[7].code, "610527000000");
    assert_eq!(children("  ").await.unwrap(), counties, "blank is the city");
}

#[tokio::test]
async fn a_county_lists_its_towns_and_a_town_its_villages() {
    let towns = children("610527000000").await.unwrap();
    check(&towns, pb::DivisionLevel::Town, "610527");
    let town = towns
        .iter()
        .find(|t| t.code == "610527106000")
        .expect("白水县's town 610527106000");
    let villages = children(&town.code).await.unwrap();
    check(&villages, pb::DivisionLevel::Village, "610527106");
    assert!(villages.iter().any(|v| v.code == "610527106202"));
    assert!(
        children("610527106202").await.unwrap().is_empty(),
        "a village has none"
    );
}

#[tokio::test]
async fn a_malformed_code_is_invalid_and_an_unknown_one_not_found() {
    for bad in ["6105", "61052700000x", "6105270000001", "白水县"] {
        let refused = children(bad).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{bad}: {refused:?}");
        assert!(refused.message().contains("parent_code"), "{refused:?}");
        let field = &refused.get_details_bad_request().unwrap().field_violations[0].field;
        assert_eq!(field, "parent_code");
    }
    let unknown = children("610599000000").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    assert!(unknown.message().contains("parent_code"), "{unknown:?}");
}
