"""Static tables of the Sichuan demo: parks, kinds of enterprise, name parts and per-category behaviour.

Park names and rough locations are those of real Sichuan parks; their boundaries are synthetic. Every enterprise
is fictional: names are assembled from the parts below, and no maker or VIN code belongs to a real company.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from models.enums import EnterpriseRole as R
from models.enums import ParkLevel, Route, TransformationStatus

# ---------------------------------------------------------------------------------------------------------------
# Parks: rough centre (lon, lat) in the county named, a radius of about a kilometre and a half, so a few km².


@dataclass(frozen=True)
class ParkSpec:
    key: str
    name_zh: str
    name_en: str
    level: ParkLevel
    county: str
    lon: float
    lat: float
    radius_km: float
    industries: str
    status: TransformationStatus
    year: int | None
    waste_free: bool = False


_N, _P = ParkLevel.national, ParkLevel.provincial
_DONE, _DOING, _TODO = (
    TransformationStatus.completed,
    TransformationStatus.in_progress,
    TransformationStatus.not_started,
)

PARKS: tuple[ParkSpec, ...] = (
    ParkSpec("pzh_vti", "攀枝花钒钛高新技术产业开发区",
             "Panzhihua Vanadium-Titanium High-tech Industrial Development Zone", _N, "510402", 101.70, 26.56, 1.5,
             "钒钛、钢铁、钛白粉、钛金属", _DONE, 2023, True),
    ParkSpec("xichang_vti", "西昌钒钛产业园区", "Xichang Vanadium-Titanium Industrial Park",
             _P, "513401", 102.25, 27.90, 1.3, "钒钛钢铁、稀土", _DOING, 2025),
    ParkSpec("shifang", "四川什邡经济开发区", "Sichuan Shifang Economic Development Zone",
             _P, "510682", 104.17, 31.13, 1.3, "磷化工、磷石膏制品", _DONE, 2024),
    ParkSpec("mianzhu", "四川绵竹经济开发区", "Sichuan Mianzhu Economic Development Zone",
             _P, "510683", 104.22, 31.33, 1.2, "磷化工、白酒、建材", _DOING, 2025),
    ParkSpec("deyang_etdz", "德阳经济技术开发区", "Deyang Economic and Technological Development Zone",
             _N, "510603", 104.43, 31.16, 1.4, "重型装备、发电设备、铸造", _DONE, 2022, True),
    ParkSpec("yibin_lingang", "宜宾临港经济技术开发区", "Yibin Lingang Economic and Technological Development Zone",
             _N, "511502", 104.78, 28.77, 1.5, "动力电池、新能源汽车、电池材料",
             _DONE, 2024, True),
    ParkSpec("shehong", "四川射洪经济开发区", "Sichuan Shehong Economic Development Zone",
             _P, "510981", 105.40, 30.88, 1.2, "锂盐、锂电材料", _DOING, 2025),
    ParkSpec("suining_etdz", "遂宁经济技术开发区", "Suining Economic and Technological Development Zone",
             _N, "510903", 105.55, 30.48, 1.3, "锂电材料、电子信息", _DONE, 2023),
    ParkSpec("wutongqiao", "四川五通桥经济开发区", "Sichuan Wutongqiao Economic Development Zone",
             _P, "511112", 103.82, 29.40, 1.2, "多晶硅、盐磷化工", _DOING, 2025),
    ParkSpec("leshan_hitech", "乐山高新技术产业开发区", "Leshan High-tech Industrial Development Zone",
             _N, "511102", 103.73, 29.60, 1.2, "多晶硅、光伏、电子材料", _DONE, 2023),
    ParkSpec("qingbaijiang", "成都青白江经济开发区", "Chengdu Qingbaijiang Economic Development Zone",
             _P, "510113", 104.33, 30.80, 1.3, "钢铁、新型建材、物流", _DOING, 2025),
    ParkSpec("chengdu_etdz", "成都经济技术开发区", "Chengdu Economic and Technological Development Zone",
             _N, "510112", 104.24, 30.59, 1.4, "汽车、新能源汽车", _DONE, 2022, True),
    ParkSpec("naxi", "四川纳溪经济开发区", "Sichuan Naxi Economic Development Zone",
             _P, "510503", 105.38, 28.77, 1.2, "天然气化工、化肥、精细化工", _DOING, 2025),
    ParkSpec("puguang", "四川达州普光经济开发区", "Sichuan Dazhou Puguang Economic Development Zone",
             _P, "511722", 107.80, 31.40, 1.2, "天然气化工、硫磺、锂钾卤水", _TODO, None),
    ParkSpec("dazhou_ez", "四川达州经济开发区", "Sichuan Dazhou Economic Development Zone",
             _P, "511703", 107.50, 31.17, 1.3, "钢铁、焦化、建材", _TODO, None),
    ParkSpec("zigong_hitech", "自贡高新技术产业开发区", "Zigong High-tech Industrial Development Zone",
             _N, "510311", 104.83, 29.31, 1.2, "盐化工、新材料、节能装备",
             _DONE, 2024),
    ParkSpec("neijiang_ez", "内江经济技术开发区", "Neijiang Economic and Technological Development Zone",
             _P, "511002", 105.02, 29.58, 1.1, "冶金、钢管、建材", _TODO, None),
    ParkSpec("guangan_etdz", "广安经济技术开发区", "Guang'an Economic and Technological Development Zone",
             _N, "511603", 106.73, 30.50, 1.3, "化工新材料、电子信息", _DOING, 2025),
    ParkSpec("jiangyou", "四川江油工业园区", "Sichuan Jiangyou Industrial Park",
             _P, "510781", 104.72, 31.78, 1.2, "特钢、水泥、建材", _DOING, 2025),
    ParkSpec("meishan", "眉山经济开发区新区", "Meishan Economic Development Zone (New Area)",
             _P, "511402", 103.86, 30.11, 1.2, "锂电材料、锂盐", _DOING, 2025),
)  # fmt: skip

# ---------------------------------------------------------------------------------------------------------------
# Kinds of enterprise. `sites` lists where they stand: a park key, or a county adcode (then near its seat).


@dataclass(frozen=True)
class Kind:
    key: str
    roles: tuple[R, ...]
    industry_zh: str
    industry_en: str
    sites: tuple[tuple[str, int], ...]
    generates: tuple[tuple[str, float, float], ...] = ()  # category, tonnes a year (low, high)
    in_house: float = 0.0  # share of utilisation done on site, so never on a manifest
    offsite_disposal: float = 0.8  # share of disposal sent to a licensed disposer
    accepts: tuple[str, ...] = ()  # categories licensed for the receiving activity
    route: Route | None = None  # what a receiver does with what it is sent
    first_year: tuple[int, int] = (2020, 2020)  # first declaration year drawn from this range
    style: str = "brand"  # how the name is built: brand, plant (group + place), outlet
    whitelist: tuple[str | None, ...] = ()  # battery whitelist batch per site instance, in order


TARGET_LIKE = ("SW01", "SW02", "SW03", "SW06", "SW10", "SW11")

KINDS: tuple[Kind, ...] = (
    # --- generators ------------------------------------------------------------------------------------------
    Kind("vti_steel", (R.generator, R.utiliser), "钒钛钢铁", "Vanadium-Titanium Iron and Steel",
         (("pzh_vti", 3), ("xichang_vti", 2)),
         (("SW01", 1_200_000, 3_500_000), ("SW03", 50_000, 150_000), ("SW02", 100_000, 300_000),
          ("SW06", 30_000, 80_000)), in_house=0.55, offsite_disposal=0.3, accepts=("SW01", "SW03"),
         route=Route.metal_recovery),
    Kind("titanium", (R.generator,), "钛业", "Titanium", (("pzh_vti", 5), ("xichang_vti", 2)),
         (("SW11", 200_000, 600_000), ("SW01", 20_000, 80_000)), in_house=0.15),
    Kind("vanadium", (R.generator,), "钒业", "Vanadium", (("pzh_vti", 3), ("xichang_vti", 1)),
         (("SW01", 50_000, 200_000),), in_house=0.3),
    Kind("steel", (R.generator, R.utiliser), "钢铁", "Iron and Steel",
         (("qingbaijiang", 2), ("jiangyou", 2), ("dazhou_ez", 1), ("neijiang_ez", 1)),
         (("SW01", 300_000, 1_200_000), ("SW03", 20_000, 60_000)), in_house=0.45, offsite_disposal=0.3,
         accepts=("SW01",), route=Route.metal_recovery),
    Kind("power", (R.generator,), "发电", "Power Generation",
         (("511526", 1), ("511504", 2), ("510781", 1), ("511603", 1), ("511703", 1), ("510522", 1),
          ("511002", 1), ("510411", 1), ("511123", 1), ("511502", 1), ("510525", 1)),
         (("SW02", 300_000, 1_200_000), ("SW03", 50_000, 150_000), ("SW06", 80_000, 250_000)),
         in_house=0.03, style="plant"),
    Kind("coal", (R.generator,), "煤业", "Coal Mining",
         (("511526", 3), ("511527", 3), ("510525", 3), ("510524", 2), ("511681", 2), ("511722", 2),
          ("511781", 1), ("511703", 2), ("510411", 2), ("511024", 2), ("511623", 1), ("511921", 1)),
         (("SW04", 100_000, 600_000),), in_house=0.5, offsite_disposal=0.2),
    Kind("phosphate", (R.generator,), "磷化工", "Phosphate Chemical",
         (("shifang", 5), ("mianzhu", 4), ("511133", 2), ("wutongqiao", 1)),
         (("SW10", 400_000, 2_000_000), ("SW03", 10_000, 50_000)), in_house=0.35, offsite_disposal=0.5),
    Kind("lithium", (R.generator,), "锂业", "Lithium", (("shehong", 3), ("meishan", 2), ("suining_etdz", 2),
         ("yibin_lingang", 1)), (("SW59", 50_000, 300_000),), in_house=0.05, first_year=(2020, 2022)),
    Kind("cathode", (R.generator,), "新能源材料", "New Energy Materials",
         (("suining_etdz", 3), ("yibin_lingang", 2), ("meishan", 1), ("shehong", 2)),
         (("SW16", 10_000, 60_000), ("SW07", 2_000, 10_000)), in_house=0.1, first_year=(2020, 2023)),
    Kind("silicon", (R.generator,), "硅业", "Silicon", (("wutongqiao", 3), ("leshan_hitech", 2)),
         (("SW59", 20_000, 100_000), ("SW03", 20_000, 80_000), ("SW06", 10_000, 40_000)), in_house=0.2,
         first_year=(2020, 2022)),
    Kind("salt", (R.generator,), "盐化工", "Salt Chemical", (("zigong_hitech", 3), ("wutongqiao", 2), ("naxi", 1)),
         (("SW16", 50_000, 200_000), ("SW03", 20_000, 80_000)), in_house=0.25),
    Kind("gas_chem", (R.generator,), "天然气化工", "Natural Gas Chemical",
         (("naxi", 3), ("puguang", 3), ("dazhou_ez", 1), ("guangan_etdz", 2)),
         (("SW03", 20_000, 100_000), ("SW06", 10_000, 50_000), ("SW16", 10_000, 40_000)), in_house=0.15),
    Kind("coking", (R.generator,), "焦化", "Coking", (("dazhou_ez", 2), ("neijiang_ez", 1), ("pzh_vti", 1)),
         (("SW03", 30_000, 90_000), ("SW16", 5_000, 20_000)), in_house=0.3),
    Kind("mine", (R.generator,), "矿业", "Mining",
         (("510411", 2), ("510422", 2), ("510421", 1), ("513425", 2), ("513426", 1), ("513301", 1), ("513201", 1),
          ("511824", 1), ("513423", 1), ("510402", 1)),
         (("SW05", 1_000_000, 12_000_000),), in_house=0.7, offsite_disposal=0.0),
    Kind("paper", (R.generator,), "纸业", "Paper", (("511102", 1), ("511502", 1), ("510502", 1)),
         (("SW07", 10_000, 60_000), ("SW03", 10_000, 30_000)), in_house=0.2),
    Kind("equipment", (R.generator,), "重型装备", "Heavy Equipment", (("deyang_etdz", 4), ("chengdu_etdz", 2)),
         (("SW59", 10_000, 50_000), ("SW01", 10_000, 40_000)), in_house=0.1),
    Kind("liquor", (R.generator,), "酒业", "Liquor", (("511502", 1), ("510502", 1), ("mianzhu", 1)),
         (("SW13", 50_000, 300_000),), in_house=0.0),
    # --- utilisers, disposers, collectors, carriers -----------------------------------------------------------
    Kind("cement", (R.utiliser,), "水泥", "Cement",
         (("510411", 1), ("510402", 1), ("513401", 1), ("510682", 1), ("510683", 1), ("511502", 1), ("511504", 1),
          ("510981", 1), ("511112", 1), ("511123", 1), ("510113", 1), ("510503", 1), ("511722", 1), ("511703", 1),
          ("510311", 1), ("511024", 1), ("511602", 1), ("510781", 2), ("511402", 1), ("511526", 1), ("510525", 1),
          ("513425", 1), ("510921", 1)),
         accepts=("SW01", "SW02", "SW03", "SW04", "SW06", "SW10", "SW11", "SW59"), route=Route.cement_admixture),
    Kind("boards", (R.utiliser,), "新型建材", "New Building Materials",
         (("shifang", 3), ("mianzhu", 2), ("pzh_vti", 2), ("xichang_vti", 1), ("qingbaijiang", 1),
          ("yibin_lingang", 1), ("guangan_etdz", 1), ("zigong_hitech", 1), ("jiangyou", 1), ("meishan", 1),
          ("suining_etdz", 1), ("naxi", 1)),
         accepts=("SW02", "SW03", "SW06", "SW10", "SW11", "SW59"), route=Route.building_materials),
    Kind("bricks", (R.utiliser,), "墙体材料", "Wall Materials",
         (("511526", 1), ("511527", 1), ("510525", 1), ("511681", 1), ("511722", 1), ("510411", 1), ("511024", 1),
          ("511623", 1), ("511921", 1)),
         accepts=("SW02", "SW03", "SW04", "SW05"), route=Route.building_materials),
    Kind("slag", (R.utiliser,), "资源综合利用", "Resource Utilisation",
         (("pzh_vti", 3), ("xichang_vti", 1), ("qingbaijiang", 1), ("jiangyou", 1), ("dazhou_ez", 1)),
         accepts=("SW01", "SW03", "SW05"), route=Route.metal_recovery),
    Kind("backfill", (R.utiliser,), "充填材料", "Backfill Materials",
         (("510411", 1), ("510422", 1), ("513425", 1), ("510682", 1), ("511133", 1), ("513301", 1)),
         accepts=("SW02", "SW04", "SW05", "SW10"), route=Route.backfill),
    Kind("roads", (R.utiliser,), "路面材料", "Road Materials",
         (("510116", 1), ("511502", 1), ("510703", 1), ("511302", 1), ("511702", 1), ("510402", 1), ("511102", 1)),
         accepts=("SW01", "SW02", "SW03", "SW04", "SW09"), route=Route.road_base),
    Kind("feed", (R.utiliser,), "饲料", "Feed", (("511502", 1), ("510502", 1), ("510683", 1)),
         accepts=("SW13",), route=Route.other_utilisation),
    Kind("energy", (R.utiliser,), "环保能源", "Environmental Energy",
         (("511102", 1), ("510903", 1), ("511502", 1), ("510311", 1)),
         accepts=("SW07", "SW13", "SW16", "SW59"), route=Route.other_utilisation),
    Kind("landfill", (R.disposer,), "固废处置", "Solid Waste Disposal",
         (("510411", 1), ("513401", 1), ("510682", 1), ("511504", 1), ("510981", 1), ("511112", 1), ("510113", 1),
          ("510503", 1), ("511703", 1), ("510311", 1), ("511602", 1), ("510781", 1), ("511526", 1), ("511402", 1)),
         accepts=("SW01", "SW02", "SW03", "SW04", "SW06", "SW07", "SW10", "SW11", "SW13", "SW16", "SW59"),
         route=Route.disposal),
    Kind("collector", (R.collector,), "再生资源回收", "Renewable Resources Recycling",
         (("510402", 1), ("510682", 1), ("511502", 1), ("510903", 1), ("511102", 1), ("510113", 1), ("510502", 1),
          ("511702", 1), ("510302", 1), ("511002", 1)),
         accepts=("SW01", "SW02", "SW03", "SW04", "SW06", "SW10", "SW11", "SW16", "SW59"), route=Route.storage),
    # Pre-treatment plants (crushing, sorting, drying) that forward what they receive to utilisers: route transfer.
    Kind("pretreat", (R.collector,), "固废预处理", "Solid Waste Pre-treatment",
         (("pzh_vti", 1), ("qingbaijiang", 1), ("shifang", 1), ("511502", 1), ("510411", 1)),
         accepts=("SW01", "SW02", "SW03", "SW10", "SW11"), route=Route.transfer),
    Kind("carrier", (R.transporter,), "物流", "Logistics",
         (("510402", 1), ("513401", 1), ("510682", 1), ("511502", 1), ("510903", 1), ("511102", 1), ("510113", 1),
          ("510502", 1), ("511702", 1), ("510302", 1), ("511002", 1), ("511602", 1), ("510781", 1), ("511402", 1),
          ("510106", 1)),
         accepts=("SW01", "SW02", "SW03", "SW04", "SW06", "SW10", "SW11")),
    # --- power batteries --------------------------------------------------------------------------------------
    Kind("battery_maker", (R.battery_maker,), "动力电池", "Power Battery",
         (("yibin_lingang", 3), ("suining_etdz", 2), ("meishan", 1), ("chengdu_etdz", 1), ("shehong", 1))),
    Kind("vehicle_maker", (R.vehicle_maker,), "汽车", "Automobile",
         (("chengdu_etdz", 3), ("yibin_lingang", 1), ("511302", 1), ("512002", 1))),
    Kind("outlet", (R.collection_outlet,), "汽车销售服务", "Automobile Sales and Service",
         (("510104", 1), ("510107", 1), ("510116", 1), ("510112", 1), ("510106", 1), ("510703", 1), ("510603", 1),
          ("511502", 1), ("511302", 1), ("510502", 1), ("511102", 1), ("511702", 1), ("510903", 1), ("510302", 1),
          ("511002", 1), ("511602", 1), ("511402", 1), ("512002", 1), ("510402", 1), ("513401", 1), ("510802", 1),
          ("511802", 1)), style="outlet"),
    Kind("cascade", (R.cascade_user,), "储能科技", "Energy Storage Technology",
         (("510116", 1), ("yibin_lingang", 1), ("suining_etdz", 1), ("510703", 1), ("deyang_etdz", 1),
          ("leshan_hitech", 1), ("zigong_hitech", 1), ("511302", 1)),
         whitelist=("2018-1", "2020-2", "2021-3", "2018-1", "2023-4", "2021-3", "2024-5", "2020-2")),
    Kind("recycler", (R.recycler,), "循环科技", "Recycling Technology",
         (("yibin_lingang", 2), ("suining_etdz", 1), ("shehong", 1), ("meishan", 1), ("deyang_etdz", 1)),
         whitelist=("2018-1", "2021-3", "2020-2", "2023-4", "2021-3", "2024-5")),
    # Deliberately unlisted (or revoked): they still receive batteries, which the chain audit must catch.
    Kind("cascade_unlisted", (R.cascade_user,), "新能源", "New Energy", (("510304", 1), ("511011", 1)),
         whitelist=(None, None)),
    Kind("recycler_unlisted", (R.recycler,), "废旧电池回收", "Waste Battery Recovery", (("510304", 1), ("511723", 1)),
         whitelist=(None, None)),
    Kind("recycler_revoked", (R.recycler,), "资源再生", "Resource Regeneration", (("510604", 1),),
         whitelist=("2020-2",)),
)  # fmt: skip

# Published lists of the whitelist (fictional dates in the rhythm of the real ones).
WHITELIST_BATCHES: dict[str, tuple[str, date]] = {
    "2018-1": ("MIIT-2018-1", date(2018, 9, 20)),
    "2020-2": ("MIIT-2020-2", date(2020, 12, 18)),
    "2021-3": ("MIIT-2021-3", date(2021, 12, 20)),
    "2023-4": ("MIIT-2023-4", date(2023, 1, 12)),
    "2024-5": ("MIIT-2024-5", date(2024, 5, 20)),
}
REVOKED_ON = date(2023, 6, 30)
# The edition of the standard conditions each batch was published under (2016年本 until the 2019年本 took over).
WHITELIST_EDITIONS: tuple[tuple[date, str], ...] = ((date(2020, 1, 1), "2016年本"), (date(2024, 12, 1), "2019年本"))

# ---------------------------------------------------------------------------------------------------------------
# Per-category behaviour of the declarations: utilisation share in 2020, yearly rise, share of the rest disposed.


@dataclass(frozen=True)
class CategoryBehaviour:
    utilised_2020: float
    rise: float
    disposed_of_rest: float


CATEGORY_BEHAVIOUR: dict[str, CategoryBehaviour] = {
    "SW01": CategoryBehaviour(0.50, 0.030, 0.15),
    "SW02": CategoryBehaviour(0.72, 0.025, 0.60),
    "SW03": CategoryBehaviour(0.80, 0.015, 0.50),
    "SW04": CategoryBehaviour(0.55, 0.030, 0.30),
    "SW05": CategoryBehaviour(0.18, 0.012, 0.00),
    "SW06": CategoryBehaviour(0.70, 0.025, 0.40),
    "SW07": CategoryBehaviour(0.55, 0.020, 0.70),
    "SW10": CategoryBehaviour(0.42, 0.040, 0.05),
    "SW11": CategoryBehaviour(0.35, 0.040, 0.20),
    "SW13": CategoryBehaviour(0.92, 0.005, 0.50),
    "SW16": CategoryBehaviour(0.45, 0.020, 0.50),
    "SW59": CategoryBehaviour(0.40, 0.040, 0.40),
}

# Province-wide utilisation of the Sichuan target set, year by year: rising toward the 78% target of 2025.
TARGET_PATH: dict[int, float] = {2020: 0.632, 2021: 0.660, 2022: 0.688, 2023: 0.716, 2024: 0.744}

# ---------------------------------------------------------------------------------------------------------------
# Name parts. Places: county-level names used in company names, else the prefecture's short name.

PREFECTURE_SHORT: dict[str, tuple[str, str]] = {
    "510100": ("成都", "Chengdu"), "510300": ("自贡", "Zigong"), "510400": ("攀枝花", "Panzhihua"),
    "510500": ("泸州", "Luzhou"), "510600": ("德阳", "Deyang"), "510700": ("绵阳", "Mianyang"),
    "510800": ("广元", "Guangyuan"), "510900": ("遂宁", "Suining"), "511000": ("内江", "Neijiang"),
    "511100": ("乐山", "Leshan"), "511300": ("南充", "Nanchong"), "511400": ("眉山", "Meishan"),
    "511500": ("宜宾", "Yibin"), "511600": ("广安", "Guang'an"), "511700": ("达州", "Dazhou"),
    "511800": ("雅安", "Ya'an"), "511900": ("巴中", "Bazhong"), "512000": ("资阳", "Ziyang"),
    "513200": ("阿坝", "Aba"), "513300": ("甘孜", "Garze"), "513400": ("凉山", "Liangshan"),
}  # fmt: skip

COUNTY_SHORT: dict[str, tuple[str, str]] = {
    "510113": ("青白江", "Qingbaijiang"), "510682": ("什邡", "Shifang"), "510683": ("绵竹", "Mianzhu"),
    "510781": ("江油", "Jiangyou"), "510981": ("射洪", "Shehong"), "511112": ("五通桥", "Wutongqiao"),
    "511123": ("犍为", "Qianwei"), "511133": ("马边", "Mabian"), "511526": ("珙县", "Gongxian"),
    "511527": ("筠连", "Junlian"), "510525": ("古蔺", "Gulin"), "510524": ("叙永", "Xuyong"),
    "510522": ("合江", "Hejiang"), "511681": ("华蓥", "Huaying"), "511722": ("宣汉", "Xuanhan"),
    "511781": ("万源", "Wanyuan"), "511024": ("威远", "Weiyuan"), "511623": ("邻水", "Linshui"),
    "513401": ("西昌", "Xichang"), "513425": ("会理", "Huili"), "513426": ("会东", "Huidong"),
    "513423": ("盐源", "Yanyuan"), "513301": ("康定", "Kangding"), "513201": ("马尔康", "Barkam"),
    "511824": ("石棉", "Shimian"), "510422": ("盐边", "Yanbian"), "510421": ("米易", "Miyi"),
    "510921": ("蓬溪", "Pengxi"), "511921": ("通江", "Tongjiang"),
}  # fmt: skip

BRAND_SYLLABLES: tuple[tuple[str, str], ...] = (
    ("鑫", "Xin"), ("恒", "Heng"), ("泰", "Tai"), ("华", "Hua"), ("宏", "Hong"), ("瑞", "Rui"), ("金", "Jin"),
    ("盛", "Sheng"), ("达", "Da"), ("源", "Yuan"), ("天", "Tian"), ("润", "Run"), ("川", "Chuan"), ("蜀", "Shu"),
    ("岷", "Min"), ("锦", "Jin"), ("嘉", "Jia"), ("坤", "Kun"), ("弘", "Hong"), ("兴", "Xing"), ("安", "An"),
    ("德", "De"), ("远", "Yuan"), ("海", "Hai"), ("隆", "Long"), ("宇", "Yu"), ("昌", "Chang"), ("明", "Ming"),
    ("正", "Zheng"), ("光", "Guang"), ("益", "Yi"), ("顺", "Shun"), ("东", "Dong"), ("方", "Fang"), ("新", "Xin"),
    ("科", "Ke"), ("中", "Zhong"), ("凯", "Kai"), ("腾", "Teng"), ("汇", "Hui"), ("博", "Bo"), ("信", "Xin"),
    ("丰", "Feng"), ("茂", "Mao"), ("辰", "Chen"), ("峰", "Feng"), ("通", "Tong"), ("永", "Yong"), ("长", "Chang"),
    ("江", "Jiang"), ("山", "Shan"), ("凌", "Ling"), ("铭", "Ming"), ("众", "Zhong"), ("诚", "Cheng"), ("和", "He"),
)  # fmt: skip

# Fictional energy groups that own the power plants ("<group><place>发电有限责任公司").
POWER_GROUPS: tuple[tuple[str, str], ...] = (
    ("蜀电", "Shudian"),
    ("川能", "Chuanneng"),
    ("巴蜀能源", "Bashu Energy"),
    ("岷江电力", "Minjiang Power"),
    ("华川", "Huachuan"),
    ("西南能投", "Southwest Energy Investment"),
)

SUFFIXES: tuple[tuple[str, str], ...] = (
    ("有限公司", "Co., Ltd."),
    ("有限责任公司", "Co., Ltd."),
    ("股份有限公司", "Co., Ltd."),
)

BATCH_REJECTIONS: tuple[str, ...] = (
    "moisture above the contract limit",
    "mixed with domestic refuse",
    "not the category on the manifest",
    "receiving yard full, lot turned back",
    "radioactivity screening failed at the gate",
)

CASCADE_APPLICATIONS: tuple[str, ...] = (
    "base-station backup power",
    "grid-side energy storage",
    "industrial peak shaving",
    "low-speed vehicles",
    "street-light storage",
    "charging-station buffer",
)
