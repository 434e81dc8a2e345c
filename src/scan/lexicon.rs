//! Word lists behind the detectors: surnames, place names, street words and column-name
//! hints (English, pinyin, hanzi).
//!
//! The lists trade recall for precision on purpose: surnames that are also everyday words
//! (和, 明, 国, 海...) are left out, so that 2-4 character product or department names are
//! not taken for people. Data only, plus two lookups; no I/O.
use std::collections::HashSet;
use std::sync::OnceLock;

use super::detect::Detector;

/// Common single-character surnames (the ~200 most frequent, minus everyday words).
const SURNAMES: &str = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫阎段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施牛樊葛邢齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂苗盛翁冉骆蓝游辛靳柴蒙鲍喻祁蒲房滕屈饶解牟穆卓缪芦麦褚娄窦戚岑卜晏卫柏瞿桂佟臧闵苟邬卞姬仇栾隋刁沙荣巫寇桑郎甄丛仲虞敖巩佘迟邝谈匡鞠荆冀郁胥栗燕楚鄢谌奚粟冼蔺闻厉伊仝郜阚帅屠朴廉禹祖漆卿狄宣晋扈晁芮阙鹿邸雍辜裘亓邰赫杭况宿逯隆茹诸慕危亢嵇湛戎茅揭尉檀昝衡尧";

/// Two-character surnames; a name with one needs 1-2 more characters.
const COMPOUND_SURNAMES: [&str; 20] = [
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒", "夏侯",
    "轩辕", "令狐", "端木", "独孤", "南宫", "西门", "申屠",
];

/// Characters that end organisation, place and product names, never given names.
pub const NOT_IN_NAMES: &str = "部省市区县路街店司厂局院校所科组处室队馆站场园楼号库仓线品类型级费额款单表";

/// Provinces, regions and large cities.
pub const PLACES: &[&str] = &[
    "北京",
    "天津",
    "上海",
    "重庆",
    "河北",
    "山西",
    "辽宁",
    "吉林",
    "黑龙江",
    "江苏",
    "浙江",
    "安徽",
    "福建",
    "江西",
    "山东",
    "河南",
    "湖北",
    "湖南",
    "广东",
    "海南",
    "四川",
    "贵州",
    "云南",
    "陕西",
    "甘肃",
    "青海",
    "台湾",
    "内蒙古",
    "广西",
    "西藏",
    "宁夏",
    "新疆",
    "香港",
    "澳门",
    "深圳",
    "广州",
    "杭州",
    "南京",
    "苏州",
    "成都",
    "武汉",
    "西安",
    "长沙",
    "郑州",
    "青岛",
    "大连",
    "厦门",
    "宁波",
    "沈阳",
    "哈尔滨",
    "长春",
    "济南",
    "合肥",
    "福州",
    "昆明",
    "南宁",
    "贵阳",
    "兰州",
    "太原",
    "石家庄",
    "南昌",
    "呼和浩特",
    "乌鲁木齐",
    "拉萨",
    "银川",
    "西宁",
    "海口",
    "三亚",
    "东莞",
    "佛山",
    "无锡",
    "珠海",
    "温州",
    "常州",
    "徐州",
    "烟台",
    "泉州",
    "惠州",
    "中山",
    "绍兴",
    "嘉兴",
    "金华",
    "台州",
    "潍坊",
    "保定",
    "唐山",
];

/// Street-level words; an address has at least two of them.
pub const STREET_WORDS: &[&str] = &[
    "路", "街", "道", "号", "区", "县", "镇", "乡", "村", "弄", "巷", "栋", "室", "单元", "楼", "幢", "小区",
    "大厦", "花园", "苑",
];

/// Column-name fragments in hanzi, most specific first.
pub const HANZI_HINTS: &[(&str, Detector)] = &[
    ("IP地址", Detector::Ipv4),
    ("ip地址", Detector::Ipv4),
    ("身份证", Detector::CnId),
    ("证件号", Detector::CnId),
    ("信用代码", Detector::Uscc),
    ("护照", Detector::Passport),
    ("车牌", Detector::Plate),
    ("银行卡", Detector::BankCard),
    ("卡号", Detector::BankCard),
    ("邮箱", Detector::Email),
    ("电子邮件", Detector::Email),
    ("手机", Detector::Mobile),
    ("电话", Detector::Mobile),
    ("联系方式", Detector::Mobile),
    ("出生", Detector::BirthDate),
    ("生日", Detector::BirthDate),
    ("工资", Detector::Salary),
    ("薪", Detector::Salary),
    ("收入", Detector::Salary),
    ("地址", Detector::Address),
    ("住址", Detector::Address),
    ("姓名", Detector::CnName),
    ("名字", Detector::CnName),
    ("联系人", Detector::CnName),
];

/// Whole words (or runs of 2-3 consecutive words, joined) of a column name, in priority
/// order: `email_address` is an email, `ip_address` an IP.
pub const TOKEN_HINTS: &[(&str, Detector)] = &[
    ("ip", Detector::Ipv4),
    ("ipaddr", Detector::Ipv4),
    ("ipaddress", Detector::Ipv4),
    ("ipv6", Detector::Ipv6),
    ("email", Detector::Email),
    ("mail", Detector::Email),
    ("youxiang", Detector::Email),
    ("dzyx", Detector::Email),
    ("sfz", Detector::CnId),
    ("sfzh", Detector::CnId),
    ("sfzhm", Detector::CnId),
    ("shenfenzheng", Detector::CnId),
    ("idcard", Detector::CnId),
    ("idno", Detector::CnId),
    ("idnum", Detector::CnId),
    ("idnumber", Detector::CnId),
    ("zjhm", Detector::CnId),
    ("zjh", Detector::CnId),
    ("certno", Detector::CnId),
    ("identity", Detector::CnId),
    ("nationalid", Detector::CnId),
    ("citizenid", Detector::CnId),
    ("uscc", Detector::Uscc),
    ("tyshxydm", Detector::Uscc),
    ("shxydm", Detector::Uscc),
    ("xydm", Detector::Uscc),
    ("creditcode", Detector::Uscc),
    ("passport", Detector::Passport),
    ("huzhao", Detector::Passport),
    ("hzhm", Detector::Passport),
    ("plate", Detector::Plate),
    ("licenseplate", Detector::Plate),
    ("chepai", Detector::Plate),
    ("cph", Detector::Plate),
    ("cardno", Detector::BankCard),
    ("cardnum", Detector::BankCard),
    ("cardnumber", Detector::BankCard),
    ("bankcard", Detector::BankCard),
    ("bankaccount", Detector::BankCard),
    ("creditcard", Detector::BankCard),
    ("yhk", Detector::BankCard),
    ("yhkh", Detector::BankCard),
    ("yinhangka", Detector::BankCard),
    ("kahao", Detector::BankCard),
    ("mobile", Detector::Mobile),
    ("phone", Detector::Mobile),
    ("tel", Detector::Mobile),
    ("telephone", Detector::Mobile),
    ("cellphone", Detector::Mobile),
    ("shouji", Detector::Mobile),
    ("sjh", Detector::Mobile),
    ("sjhm", Detector::Mobile),
    ("dianhua", Detector::Mobile),
    ("lxdh", Detector::Mobile),
    ("birthday", Detector::BirthDate),
    ("birth", Detector::BirthDate),
    ("birthdate", Detector::BirthDate),
    ("dob", Detector::BirthDate),
    ("csrq", Detector::BirthDate),
    ("chusheng", Detector::BirthDate),
    ("shengri", Detector::BirthDate),
    ("salary", Detector::Salary),
    ("wage", Detector::Salary),
    ("wages", Detector::Salary),
    ("income", Detector::Salary),
    ("gongzi", Detector::Salary),
    ("xinzi", Detector::Salary),
    ("xinchou", Detector::Salary),
    ("address", Detector::Address),
    ("addr", Detector::Address),
    ("dizhi", Detector::Address),
    ("zhuzhi", Detector::Address),
    ("name", Detector::CnName),
    ("xingming", Detector::CnName),
    ("xm", Detector::CnName),
    ("fullname", Detector::CnName),
    ("realname", Detector::CnName),
    ("lianxiren", Detector::CnName),
    ("lxr", Detector::CnName),
];

/// Long, unambiguous fragments also found inside single-word names (`customeremail`).
pub const SUBSTRING_HINTS: &[(&str, Detector)] = &[
    ("shenfenzheng", Detector::CnId),
    ("idcard", Detector::CnId),
    ("idnumber", Detector::CnId),
    ("tyshxydm", Detector::Uscc),
    ("creditcode", Detector::Uscc),
    ("passport", Detector::Passport),
    ("huzhao", Detector::Passport),
    ("chepai", Detector::Plate),
    ("bankcard", Detector::BankCard),
    ("email", Detector::Email),
    ("youxiang", Detector::Email),
    ("mobile", Detector::Mobile),
    ("phone", Detector::Mobile),
    ("shouji", Detector::Mobile),
    ("dianhua", Detector::Mobile),
    ("birthday", Detector::BirthDate),
    ("salary", Detector::Salary),
    ("gongzi", Detector::Salary),
    ("address", Detector::Address),
    ("dizhi", Detector::Address),
    ("xingming", Detector::CnName),
];

/// Words that make `name` someone else's than a person's (`company_name`, `file_name`).
pub const NOT_PERSON: &[&str] = &[
    "company",
    "supplier",
    "vendor",
    "product",
    "goods",
    "item",
    "sku",
    "file",
    "table",
    "schema",
    "host",
    "domain",
    "brand",
    "shop",
    "store",
    "dept",
    "department",
    "city",
    "province",
    "country",
    "category",
    "user",
    "username",
    "bank",
    "branch",
    "org",
    "corp",
    "project",
    "app",
    "service",
    "db",
    "column",
    "field",
    "tag",
    "team",
    "group",
];

pub fn is_surname(c: char) -> bool {
    SURNAMES.contains(c)
}

pub fn is_compound_surname(a: char, b: char) -> bool {
    let mut buf = [0u8; 8];
    let la = a.encode_utf8(&mut buf).len();
    let lb = b.encode_utf8(&mut buf[la..]).len();
    let s = std::str::from_utf8(&buf[..la + lb]).unwrap_or("");
    COMPOUND_SURNAMES.contains(&s)
}

/// Whether a 4-digit province+city prefix (`4403`) belongs to a real county code.
pub fn city_prefix_exists(prefix: u32) -> bool {
    static SET: OnceLock<HashSet<u32>> = OnceLock::new();
    SET.get_or_init(|| {
        crate::mask::regions::REGION_CODES
            .iter()
            .map(|c| c / 100)
            .collect()
    })
    .contains(&prefix)
}
