"""The English meaning of the Korean values the ECLO inputs take, for descriptions a reader or a model can follow.
The dashboard keeps its own copy (frontend/labels.py): its image ships no backend code."""

ENGLISH: dict[str, str] = {
    "맑음": "clear", "흐림": "cloudy", "비": "rain", "눈": "snow", "안개": "fog", "기타": "other",
    "건조": "dry", "젖음/습기": "wet", "서리/결빙": "frost/ice", "적설": "snow-covered", "침수": "flooded",
    "차대사람": "vehicle-pedestrian", "차대차": "vehicle-vehicle", "차량단독": "single vehicle",
    "출근시간대": "morning rush 7-9h", "퇴근시간대": "evening rush 17-19h", "심야": "late night 22-5h",
    "일반시간대": "regular hours", "교차로": "intersection", "교차로안": "inside", "교차로부근": "near",
    "교차로횡단보도내": "on a crosswalk", "단일로": "road segment", "고가도로위": "overpass", "교량": "bridge",
    "지하차도(도로)내": "underpass", "터널": "tunnel", "미분류": "unclassified", "주차장": "parking lot",
    "월요일": "Mon", "화요일": "Tue", "수요일": "Wed", "목요일": "Thu", "금요일": "Fri", "토요일": "Sat",
    "일요일": "Sun", "중구": "Jung-gu", "동구": "Dong-gu", "서구": "Seo-gu", "남구": "Nam-gu", "북구": "Buk-gu",
    "수성구": "Suseong-gu", "달서구": "Dalseo-gu", "달성군": "Dalseong-gun",
}  # fmt: skip
