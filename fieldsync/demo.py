"""Demo data: two streets of 东城区, their teams ("1+5+N", DOMAIN.md §2) and a catalogue.

``load_demo`` is idempotent: every row is looked up by its stable code (username for people,
number for certificates) and only created when missing; nothing that exists is changed. Ids are
deterministic (``demo_uuid(kind, code)``), so they are the same on every machine. It never
commits: the caller does.

Every demo account has the same password, ``DEMO_PASSWORD``.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from fieldsync.org.models import (
    Certificate,
    Community,
    Department,
    DepartmentKind,
    District,
    Grid,
    Matter,
    Person,
    Role,
    Street,
    Team,
)
from fieldsync.org.service import create_person, revoke_certificate

# --------------------------------------------------------------------------------------------
# stable names and ids

DEMO_PASSWORD = "fieldsync-demo"
DEMO_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:fieldsync:demo")
# kinds accepted by demo_uuid; the code is the row's stable code (username for people,
# certificate number for certificates, the street's code for its team)
KINDS = frozenset(
    {
        "district",
        "street",
        "community",
        "grid",
        "department",
        "team",
        "person",
        "certificate",
        "matter",
    }
)

DISTRICT_CODE = "110101"
STREET_A_CODE = "110101001"  # 东华门街道, the main demo street
STREET_B_CODE = "110101002"  # 景山街道, a smaller second street (scope)

# key people, for tests and the README
CAPTAIN = "captain"
VICE_CAPTAIN_CHENGGUAN = "vice_chengguan"
VICE_CAPTAIN_POLICE = "vice_police"
DISPATCHER = "dispatcher"
ADMIN = "admin"
EXPIRED_CERT_OFFICER = "cg_zhou"  # 城管 officer whose certificate expired in 2025
REVOKED_CERT_OFFICER = "cg_wu"  # 城管 officer whose certificate was revoked on 2026-06-01
STREET_B_CAPTAIN = "js_captain"
STREET_B_ADMIN = "admin_jingshan"

CERT_VALID_FROM = datetime(2024, 1, 1, tzinfo=UTC)
CERT_VALID_TO = datetime(2028, 12, 31, tzinfo=UTC)
EXPIRED_VALID_FROM = datetime(2020, 7, 1, tzinfo=UTC)
EXPIRED_VALID_TO = datetime(2025, 6, 30, tzinfo=UTC)
REVOKED_AT = datetime(2026, 6, 1, tzinfo=UTC)
REVOKED_REASON = "调离执法岗位，执法证收回 (transferred to a non-enforcement post)"


def demo_uuid(kind: str, code: str) -> uuid.UUID:
    """The id a demo row of ``kind`` with stable ``code`` has on every machine."""
    if kind not in KINDS:
        raise ValueError(f"unknown demo kind {kind!r}")
    return uuid.uuid5(DEMO_NAMESPACE, f"{kind}:{code}")


def password_for(username: str) -> str:
    """The password of a demo account (one shared password)."""
    return DEMO_PASSWORD


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    full_name: str
    roles: tuple[str, ...]
    street_code: str
    description: str


# --------------------------------------------------------------------------------------------
# organisation

DISTRICT = (DISTRICT_CODE, "东城区", "Dongcheng District")

# code, name_zh, name_en, case_abbrev
STREETS = [
    (STREET_A_CODE, "东华门街道", "Donghuamen Subdistrict", "东华"),
    (STREET_B_CODE, "景山街道", "Jingshan Subdistrict", "东景"),
]

# street code -> [(community code, name_zh, name_en, number of grids)]
COMMUNITIES: dict[str, list[tuple[str, str, str, int]]] = {
    STREET_A_CODE: [
        ("110101001001", "多福巷社区", "Duofuxiang Community", 3),
        ("110101001002", "韶九社区", "Shaojiu Community", 2),
    ],
    STREET_B_CODE: [
        ("110101002001", "吉祥社区", "Jixiang Community", 2),
        ("110101002002", "黄化门社区", "Huanghuamen Community", 2),
    ],
}


def grid_code(community_code: str, n: int) -> str:
    return f"{community_code}-{n:02d}"


RESIDENT = DepartmentKind.RESIDENT
LISTED = DepartmentKind.LISTED

# code, name_zh, name_en, kind — district-level, shared by both streets
DEPARTMENTS: list[tuple[str, str, str, DepartmentKind]] = [
    # the six resident units (常驻单位): 城管 + the "5"
    ("chengguan", "城管执法", "Urban Management", RESIDENT),
    ("police", "公安", "Public Security", RESIDENT),
    ("market", "市场监管", "Market Regulation", RESIDENT),
    ("food_drug", "食药", "Food and Drug", RESIDENT),
    ("traffic", "交通", "Traffic Police", RESIDENT),
    ("fire", "消防", "Fire Rescue", RESIDENT),
    # listed units (挂牌单位): some of the "N"
    ("environment", "生态环境", "Ecology and Environment", LISTED),
    ("planning", "规划和自然资源", "Planning and Natural Resources", LISTED),
    ("housing", "住房和城乡建设", "Housing and Urban-Rural Development", LISTED),
    ("culture_tourism", "文化和旅游", "Culture and Tourism", LISTED),
    ("health", "卫生健康", "Health", LISTED),
    ("landscaping", "园林绿化", "Landscaping and Greening", LISTED),
    ("water", "水务", "Water Affairs", LISTED),
    ("human_resources", "人力资源和社会保障", "Human Resources and Social Security", LISTED),
    ("emergency", "应急管理", "Emergency Management", LISTED),
]
RESIDENT_DEPARTMENTS = tuple(d[0] for d in DEPARTMENTS if d[3] is RESIDENT)
LISTED_DEPARTMENTS = tuple(d[0] for d in DEPARTMENTS if d[3] is LISTED)

# --------------------------------------------------------------------------------------------
# catalogue (执法事项)

TIERS = ("enforcement", "inspection", "investigation", "referral")
MEASURES = ("photo_evidence", "summons", "seizure", "order_rectification", "onsite_penalty")
DEFAULT_MEASURES: dict[str, tuple[str, ...]] = {
    "enforcement": MEASURES,
    "inspection": ("photo_evidence", "summons", "seizure"),
    "investigation": ("photo_evidence", "summons"),
    "referral": ("photo_evidence",),
}

NO_SEIZURE = ("seizure",)
NO_PENALTY = ("onsite_penalty",)
NO_SEIZURE_NO_PENALTY = ("seizure", "onsite_penalty")


def allowed_measures(without: Iterable[str] = ()) -> dict[str, list[str]]:
    """The default measures per tier, less those that make no sense for a matter."""
    drop = set(without)
    return {tier: [m for m in DEFAULT_MEASURES[tier] if m not in drop] for tier in TIERS}


_SHIRONG = "《北京市市容环境卫生条例》"
_ZHIAN = "《中华人民共和国治安管理处罚法》"
_SHIPIN = "《中华人民共和国食品安全法》"
_XIAOFANG = "《中华人民共和国消防法》"
_DAOLU = "《中华人民共和国道路交通安全法》"

# fmt: off
# code, department, name_zh, name_en, legal_basis, measures left out
MATTERS: list[tuple[str, str, str, str, str, tuple[str, ...]]] = [
    # 城管执法
    ("CG-001", "chengguan", "占道经营", "Street vending occupying the road",
     _SHIRONG, ()),
    ("CG-002", "chengguan", "无照游商", "Unlicensed itinerant vending",
     "《无证无照经营查处办法》；" + _SHIRONG, ()),
    ("CG-003", "chengguan", "违法建设", "Illegal construction",
     "《北京市禁止违法建设若干规定》；《中华人民共和国城乡规划法》", NO_PENALTY),
    ("CG-004", "chengguan", "乱堆物料", "Piling materials in public space",
     _SHIRONG, ()),
    ("CG-005", "chengguan", "露天烧烤", "Open-air barbecue",
     "《中华人民共和国大气污染防治法》第八十一条；《北京市大气污染防治条例》", ()),
    ("CG-006", "chengguan", "非法小广告", "Illegal flyposting and small advertisements",
     _SHIRONG, ()),
    ("CG-007", "chengguan", "渣土遗撒", "Spilling construction waste in transport",
     _SHIRONG, ()),
    ("CG-008", "chengguan", "擅自设置户外广告", "Unauthorised outdoor advertising",
     "《城市市容和环境卫生管理条例》；" + _SHIRONG, NO_SEIZURE),
    ("CG-009", "chengguan", "生活垃圾未分类投放", "Household waste not sorted",
     "《北京市生活垃圾管理条例》", NO_SEIZURE),
    ("CG-010", "chengguan", "店外经营", "Trading outside the shop front",
     _SHIRONG, ()),
    # 公安
    ("GA-001", "police", "扰乱公共秩序", "Disturbing public order",
     _ZHIAN, ()),
    ("GA-002", "police", "寻衅滋事", "Picking quarrels and provoking trouble",
     _ZHIAN, NO_SEIZURE),
    ("GA-003", "police", "阻碍依法执行职务", "Obstructing officials performing their duties",
     _ZHIAN, NO_SEIZURE_NO_PENALTY),
    ("GA-004", "police", "非法携带管制器具", "Carrying controlled knives or instruments",
     _ZHIAN, ()),
    # 市场监管
    ("SJ-001", "market", "无照经营", "Unlicensed business at fixed premises",
     "《无证无照经营查处办法》", ()),
    ("SJ-002", "market", "超范围经营", "Operating beyond the registered scope",
     "《中华人民共和国市场主体登记管理条例》", NO_SEIZURE),
    ("SJ-003", "market", "价格违法（未明码标价）", "Price violations (no price tags)",
     "《中华人民共和国价格法》第十三条；《明码标价和禁止价格欺诈规定》", NO_SEIZURE),
    ("SJ-004", "market", "销售假冒伪劣商品", "Selling counterfeit or substandard goods",
     "《中华人民共和国产品质量法》", NO_PENALTY),
    ("SJ-005", "market", "计量器具作弊", "Tampered weighing scales",
     "《中华人民共和国计量法》", ()),
    # 食药
    ("SY-001", "food_drug", "无证餐饮", "Catering without a food business licence",
     _SHIPIN + "第三十五条", ()),
    ("SY-002", "food_drug", "经营超过保质期食品", "Selling food past its shelf life",
     _SHIPIN + "第三十四条", ()),
    ("SY-003", "food_drug", "从业人员未取得健康证明", "Food handlers without health certificates",
     _SHIPIN + "第四十五条", NO_SEIZURE),
    ("SY-004", "food_drug", "餐饮环境卫生不符合要求", "Unsanitary catering premises",
     _SHIPIN, NO_SEIZURE),
    ("SY-005", "food_drug", "销售假劣药品", "Selling counterfeit or substandard medicines",
     "《中华人民共和国药品管理法》", NO_PENALTY),
    # 交通
    ("JT-001", "traffic", "机动车违法停车", "Illegal parking of motor vehicles",
     _DAOLU + "第五十六条", NO_SEIZURE),
    ("JT-002", "traffic", "非机动车乱停乱放", "Disorderly parking of non-motor vehicles",
     "《北京市非机动车管理条例》", NO_SEIZURE),
    ("JT-003", "traffic", "占道施工未设置安全警示", "Roadworks without safety warnings",
     _DAOLU + "第三十二条", NO_SEIZURE_NO_PENALTY),
    ("JT-004", "traffic", "电动自行车违法载人", "Carrying passengers illegally on an e-bike",
     "《北京市非机动车管理条例》", ()),
    # 消防
    ("XF-001", "fire", "堵塞消防车通道", "Blocking fire engine access",
     _XIAOFANG + "第二十八条", NO_SEIZURE),
    ("XF-002", "fire", "占用疏散通道、安全出口", "Obstructing evacuation routes or exits",
     _XIAOFANG + "第二十八条", NO_SEIZURE),
    ("XF-003", "fire", "电动自行车违规停放充电", "Parking or charging e-bikes in corridors",
     "《北京市消防条例》；《高层民用建筑消防安全管理规定》", ()),
    ("XF-004", "fire", "消防设施器材未保持完好有效", "Fire equipment not kept in working order",
     _XIAOFANG + "第十六条", NO_SEIZURE),
    ("XF-005", "fire", "违规使用明火", "Open flames in a fire-hazard area",
     _XIAOFANG + "第二十一条", ()),
    # 生态环境 (listed)
    ("HJ-001", "environment", "餐饮油烟超标排放", "Catering oil fumes above the standard",
     "《中华人民共和国大气污染防治法》第八十一条", NO_PENALTY),
    ("HJ-002", "environment", "夜间施工噪声扰民", "Construction noise at night",
     "《中华人民共和国噪声污染防治法》", NO_SEIZURE),
    # 规划和自然资源 (listed)
    ("GH-001", "planning", "未取得建设工程规划许可证进行建设", "Building without a planning permit",
     "《中华人民共和国城乡规划法》第六十四条", NO_SEIZURE_NO_PENALTY),
    ("GH-002", "planning", "擅自改变规划用途", "Unauthorised change of planned land use",
     "《北京市城乡规划条例》", NO_SEIZURE_NO_PENALTY),
    # 住房和城乡建设 (listed)
    ("ZJ-001", "housing", "施工工地扬尘防治不到位", "Dust control failures at a building site",
     "《北京市大气污染防治条例》", NO_SEIZURE),
    ("ZJ-002", "housing", "违规群租", "Illegal subdivided group renting",
     "《北京市住房租赁条例》", NO_SEIZURE_NO_PENALTY),
    # 文化和旅游 (listed)
    ("WL-001", "culture_tourism", "擅自从事互联网上网服务经营", "Unlicensed internet café",
     "《互联网上网服务营业场所管理条例》", ()),
    ("WL-002", "culture_tourism", "未经许可经营旅行社业务", "Unlicensed travel agency business",
     "《中华人民共和国旅游法》", NO_PENALTY),
    # 卫生健康 (listed)
    ("WJ-001", "health", "非法行医", "Practising medicine without a licence",
     "《中华人民共和国基本医疗卫生与健康促进法》；《医疗机构管理条例》", NO_PENALTY),
    ("WJ-002", "health", "禁止吸烟场所吸烟", "Smoking where smoking is banned",
     "《北京市控制吸烟条例》", NO_SEIZURE),
    # 园林绿化, 水务, 人力社保, 应急管理 (listed)
    ("YL-001", "landscaping", "擅自砍伐、移植树木", "Felling or moving trees without permission",
     "《北京市绿化条例》", NO_PENALTY),
    ("SW-001", "water", "违法向排水管网排放污水", "Illegal discharge into the sewer network",
     "《城镇排水与污水处理条例》", NO_SEIZURE),
    ("RS-001", "human_resources", "拖欠农民工工资", "Withholding migrant workers' wages",
     "《保障农民工工资支付条例》", NO_SEIZURE_NO_PENALTY),
    ("YJ-001", "emergency", "生产经营单位未落实安全生产责任", "Work-safety duties not fulfilled",
     "《中华人民共和国安全生产法》", NO_PENALTY),
]
# fmt: on


# --------------------------------------------------------------------------------------------
# roster


@dataclass(frozen=True)
class _PersonSpec:
    username: str
    full_name: str
    roles: tuple[Role, ...]
    description: str
    department: str | None = None
    title: str | None = None
    grid: str | None = None  # grid code
    on_team: bool = True
    certificate: str | None = None  # certificate number
    cert_state: str = "valid"  # valid | expired | revoked


_OFFICER, _CAPTAIN, _GRID_WORKER = Role.OFFICER, Role.CAPTAIN, Role.GRID_WORKER
_A_DUOFU, _A_SHAOJIU = "110101001001", "110101001002"
_B_JIXIANG = "110101002001"


def _cert(n: int) -> str:
    return f"京执字110101{n:05d}"


def _officer(
    username: str, full_name: str, department: str, cert: int, description: str, **kw: Any
) -> _PersonSpec:
    return _PersonSpec(
        username,
        full_name,
        (_OFFICER,),
        description,
        department=department,
        certificate=_cert(cert),
        **kw,
    )


def _handler(username: str, full_name: str, department: str, zh: str) -> _PersonSpec:
    return _PersonSpec(
        username,
        full_name,
        (Role.CASE_HANDLER,),
        f"{zh} back office: file (立案) or decline the cases diverted to {zh}, conclude them",
        department=department,
        title="办案人员",
    )


def _grid_worker(username: str, full_name: str, grid: str, place: str) -> _PersonSpec:
    return _PersonSpec(
        username,
        full_name,
        (_GRID_WORKER,),
        f"grid worker of {place}: report problems with photos (事件上报); cannot enforce",
        grid=grid,
        title="网格员",
        on_team=False,
    )


# fmt: off
PEOPLE: dict[str, list[_PersonSpec]] = {
    STREET_A_CODE: [
        # leadership (table 1)
        _PersonSpec(
            CAPTAIN, "张志强", (_CAPTAIN, _OFFICER),
            "team captain (街道主管城市管理副主任): review flagged inspections, archive cases; "
            "also a 城管 officer in the field",
            department="chengguan", title="队长", certificate=_cert(24001),
        ),
        _officer(VICE_CAPTAIN_CHENGGUAN, "李明", "chengguan", 24002,
                 "vice captain, leader of the 城管 squad: inspect 城管 matters",
                 title="副队长"),
        _officer(VICE_CAPTAIN_POLICE, "赵刚", "police", 24003,
                 "vice captain, police station deputy chief for public order: 公安 matters",
                 title="副队长"),
        # "1": the urban-management squad
        _officer("cg_wang", "王建国", "chengguan", 24011,
                 "城管 officer: with cg_liu, street vending (CG-001) is tier enforcement"),
        _officer("cg_liu", "刘洋", "chengguan", 24012,
                 "城管 officer: with only police_li beside him, CG-001 is tier inspection"),
        _officer("cg_chen", "陈磊", "chengguan", 24013, "城管 officer"),
        _officer("cg_yang", "杨帆", "chengguan", 24014, "城管 officer"),
        _officer("cg_zhao", "赵静", "chengguan", 24015, "城管 officer"),
        _officer("cg_huang", "黄伟", "chengguan", 24016, "城管 officer"),
        _officer(EXPIRED_CERT_OFFICER, "周勇", "chengguan", 20017,
                 "城管 officer whose certificate EXPIRED on 2025-06-30: holds no authority",
                 cert_state="expired"),
        _officer(REVOKED_CERT_OFFICER, "吴涛", "chengguan", 24018,
                 "城管 officer whose certificate was REVOKED on 2026-06-01: holds no authority",
                 cert_state="revoked"),
        # "5": resident staff seconded to the team
        _officer("police_li", "李娜", "police", 24021,
                 "公安 officer: second inspector for a 城管 matter, or GA-001 with police_sun"),
        _officer("police_sun", "孙浩", "police", 24022, "公安 officer"),
        _officer("market_zhu", "朱红", "market", 24031,
                 "市场监管 officer: unlicensed business (SJ-001) with market_hu"),
        _officer("market_hu", "胡斌", "market", 24032, "市场监管 officer"),
        _officer("food_guo", "郭芳", "food_drug", 24041,
                 "the only 食药 officer: for 食药 matters (SY-001) she needs a second "
                 "inspector from another resident unit (tier inspection)"),
        _officer("traffic_he", "何军", "traffic", 24051,
                 "the only 交通 officer: illegal parking (JT-001)"),
        _officer("fire_lin", "林峰", "fire", 24061,
                 "消防 officer: blocked fire lane (XF-001) with fire_gao"),
        _officer("fire_gao", "高翔", "fire", 24062, "消防 officer"),
        # auxiliary force: grid workers, one per grid
        _grid_worker("grid_duofu1", "孙丽", grid_code(_A_DUOFU, 1), "多福巷社区 grid 1"),
        _grid_worker("grid_duofu2", "钱伟", grid_code(_A_DUOFU, 2), "多福巷社区 grid 2"),
        _grid_worker("grid_duofu3", "冯晓梅", grid_code(_A_DUOFU, 3), "多福巷社区 grid 3"),
        _grid_worker("grid_shaojiu1", "韩磊", grid_code(_A_SHAOJIU, 1), "韶九社区 grid 1"),
        _grid_worker("grid_shaojiu2", "曹雪", grid_code(_A_SHAOJIU, 2), "韶九社区 grid 2"),
        # back office
        _PersonSpec(
            DISPATCHER, "罗晓燕", (Role.DISPATCHER,),
            "street grid center (为民服务分中心): turn reports and 12345 calls into task "
            "orders, start whistles",
            title="网格中心调度员", on_team=False,
        ),
        _PersonSpec(
            "reviewer_liang", "梁静", (Role.REVIEWER,),
            "reviewer: accept or send back inspections and photo evidence",
            title="审核员",
        ),
        _PersonSpec(
            "reviewer_song", "宋佳", (Role.REVIEWER,),
            "reviewer: accept or send back inspections and photo evidence",
            title="审核员",
        ),
        _handler("handler_chengguan", "许文", "chengguan", "城管"),
        _handler("handler_police", "邓超", "police", "公安"),
        _handler("handler_market", "彭丽", "market", "市场监管"),
        _handler("handler_food_drug", "蒋琳", "food_drug", "食药"),
        _handler("handler_traffic", "谢东", "traffic", "交通"),
        _handler("handler_fire", "潘军", "fire", "消防"),
        _PersonSpec(
            ADMIN, "田芳", (Role.ADMIN,),
            "admin of 东华门: roster, certificates (revoke one!), catalogue, devices",
            title="系统管理员", on_team=False,
        ),
    ],
    STREET_B_CODE: [
        _PersonSpec(
            STREET_B_CAPTAIN, "马振华", (_CAPTAIN, _OFFICER),
            "captain of 景山: sees only 景山's people and inspections (scope)",
            department="chengguan", title="队长", certificate=_cert(24101),
        ),
        _officer("js_cg_xu", "徐强", "chengguan", 24111, "景山 城管 officer"),
        _officer("js_cg_deng", "邓丽", "chengguan", 24112, "景山 城管 officer"),
        _officer("js_police_feng", "冯涛", "police", 24121, "景山 公安 officer"),
        _officer("js_market_cao", "曹敏", "market", 24131, "景山 市场监管 officer"),
        _grid_worker("js_grid_jixiang1", "卢燕", grid_code(_B_JIXIANG, 1), "景山 吉祥社区 grid 1"),
        _handler("js_handler_chengguan", "钟华", "chengguan", "城管"),
        _PersonSpec(
            STREET_B_ADMIN, "蔡静", (Role.ADMIN,),
            "admin of 景山: cannot see 东华门's roster",
            title="系统管理员", on_team=False,
        ),
    ],
}
# fmt: on


# --------------------------------------------------------------------------------------------
# loading


def _one(session: Session, model: type[Any], **where: Any) -> Any:
    stmt = select(model)
    for attr, value in where.items():
        stmt = stmt.where(getattr(model, attr) == value)
    return session.scalar(stmt)


def _ensure(session: Session, model: type[Any], id_kind: str, code: str, **fields: Any) -> Any:
    """The row of ``model`` with this code, created (with its demo id) when missing."""
    row = _one(session, model, code=code)
    if row is None:
        row = model(id=demo_uuid(id_kind, code), code=code, **fields)
        session.add(row)
        session.flush()
    return row


def _load_org(session: Session) -> tuple[dict[str, Street], dict[str, Department], dict[str, Grid]]:
    code, name_zh, name_en = DISTRICT
    district = _ensure(session, District, "district", code, name_zh=name_zh, name_en=name_en)

    streets: dict[str, Street] = {}
    grids: dict[str, Grid] = {}
    for s_code, s_zh, s_en, abbrev in STREETS:
        street = _ensure(
            session,
            Street,
            "street",
            s_code,
            district_id=district.id,
            name_zh=s_zh,
            name_en=s_en,
            case_abbrev=abbrev,
        )
        streets[s_code] = street
        if _one(session, Team, street_id=street.id) is None:
            short_zh, short_en = s_zh.removesuffix("街道"), s_en.removesuffix(" Subdistrict")
            session.add(
                Team(
                    id=demo_uuid("team", s_code),
                    street_id=street.id,
                    name_zh=f"{short_zh}街道综合执法队",
                    name_en=f"{short_en} Comprehensive Enforcement Team",
                )
            )
            session.flush()
        for c_code, c_zh, c_en, n_grids in COMMUNITIES[s_code]:
            community = _ensure(
                session,
                Community,
                "community",
                c_code,
                street_id=street.id,
                name_zh=c_zh,
                name_en=c_en,
            )
            for n in range(1, n_grids + 1):
                g_code = grid_code(c_code, n)
                grids[g_code] = _ensure(
                    session,
                    Grid,
                    "grid",
                    g_code,
                    community_id=community.id,
                    name_zh=f"{c_zh}第{n}网格",
                    name_en=f"{c_en} Grid {n}",
                )

    departments = {
        d_code: _ensure(
            session, Department, "department", d_code, name_zh=d_zh, name_en=d_en, kind=kind
        )
        for d_code, d_zh, d_en, kind in DEPARTMENTS
    }
    return streets, departments, grids


def _load_catalogue(session: Session, departments: dict[str, Department]) -> None:
    for code, department, name_zh, name_en, legal_basis, without in MATTERS:
        _ensure(
            session,
            Matter,
            "matter",
            code,
            department_id=departments[department].id,
            name_zh=name_zh,
            name_en=name_en,
            legal_basis=legal_basis,
            allowed_measures=allowed_measures(without),
        )


def _ensure_certificate(session: Session, person: Person, spec: _PersonSpec) -> None:
    assert spec.certificate is not None
    if _one(session, Certificate, number=spec.certificate) is not None:
        return
    valid_from, valid_to = CERT_VALID_FROM, CERT_VALID_TO
    if spec.cert_state == "expired":
        valid_from, valid_to = EXPIRED_VALID_FROM, EXPIRED_VALID_TO
    certificate = Certificate(
        id=demo_uuid("certificate", spec.certificate),
        person=person,
        number=spec.certificate,
        valid_from=valid_from,
        valid_to=valid_to,
    )
    session.add(certificate)
    session.flush()
    if spec.cert_state == "revoked":
        revoke_certificate(session, certificate=certificate, reason=REVOKED_REASON, now=REVOKED_AT)


def load_demo(session: Session, *, hasher: PasswordHasher) -> list[DemoAccount]:
    """Create whatever of the demo data is missing; return every demo account. Never commits."""
    streets, departments, grids = _load_org(session)
    _load_catalogue(session, departments)

    accounts: list[DemoAccount] = []
    for street_code, specs in PEOPLE.items():
        street = streets[street_code]
        for spec in specs:
            person = _one(session, Person, username=spec.username)
            if person is None:
                person = create_person(
                    session,
                    hasher=hasher,
                    street_id=street.id,
                    username=spec.username,
                    password=password_for(spec.username),
                    full_name=spec.full_name,
                    roles=spec.roles,
                    department_id=departments[spec.department].id if spec.department else None,
                    grid_id=grids[spec.grid].id if spec.grid else None,
                    title=spec.title,
                    on_team=spec.on_team,
                    person_id=demo_uuid("person", spec.username),
                )
            if spec.certificate is not None:
                _ensure_certificate(session, person, spec)
            accounts.append(
                DemoAccount(
                    username=spec.username,
                    password=password_for(spec.username),
                    full_name=spec.full_name,
                    roles=tuple(sorted(r.value for r in spec.roles)),
                    street_code=street_code,
                    description=spec.description,
                )
            )
    session.flush()
    return accounts


# --------------------------------------------------------------------------------------------
# terminal output


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def format_accounts(accounts: Sequence[DemoAccount]) -> str:
    """A table of the demo accounts for the terminal (CJK-aware column widths)."""
    street_names = {code: name_zh for code, name_zh, _en, _abbrev in STREETS}
    header = ("username", "password", "roles", "street", "name", "what to try")
    rows = [
        (
            a.username,
            a.password,
            ",".join(a.roles),
            street_names.get(a.street_code, a.street_code),
            a.full_name,
            a.description,
        )
        for a in accounts
    ]
    widths = [max(_width(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]

    def line(cells: Sequence[str]) -> str:
        padded = [_pad(c, w) for c, w in zip(cells[:-1], widths, strict=True)]
        return "  ".join([*padded, cells[-1]]).rstrip()

    passwords = sorted({a.password for a in accounts})
    out = [
        f"{len(accounts)} demo accounts; password: {', '.join(passwords) or DEMO_PASSWORD}",
        "",
        line(header),
        line(["-" * w for w in widths] + ["-" * len(header[-1])]),
        *(line(r) for r in rows),
    ]
    return "\n".join(out)
