// values.hpp: classification, big integers, calendar values, text-or-bytes, names.
#include "../core/values.hpp"

#include <datetime.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "test_support.hpp"

using namespace sb;
using namespace sbtest;
using Catch::Matchers::EndsWith;
using Catch::Matchers::StartsWith;

namespace {

// An environment with the usual modules and a few user-defined subclasses.
PyRef values_env() {
  PyRef g = new_globals("sbtest.values");
  py_exec(
      "import zoneinfo\n"
      "Point = collections.namedtuple('Point', 'x y')\n"
      "class Color(enum.IntEnum):\n"
      "    RED = 1\n"
      "class MyStr(str): pass\n"
      "class MyFloat(float): pass\n"
      "class MyList(list): pass\n"
      "class MySet(set): pass\n"
      "class MyFrozen(frozenset): pass\n"
      "class MyDate(datetime.date): pass\n"
      "class MyDateTime(datetime.datetime): pass\n"
      "class Outer:\n"
      "    class Inner: pass\n"
      "class Sneaky:\n"
      "    @property\n"
      "    def __class__(self):\n"
      "        raise RuntimeError('no class for you')\n",
      g.get());
  return g;
}

// datetime.h's C API pointer is per translation unit: this file needs its own.
void import_datetime_here() {
  if (!PyDateTimeAPI) PyDateTime_IMPORT;
  REQUIRE(PyDateTimeAPI != nullptr);
}

bool is_valid_utf8(const std::string& s) {
  PyObject* u = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), nullptr);
  if (!u) {
    PyErr_Clear();
    return false;
  }
  Py_DECREF(u);
  return true;
}

size_t code_points(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

TEST_CASE("classify maps exact builtin types and leaves subclasses as Other", "[values][classify]") {
  Gil gil;
  PyRef g = values_env();
  const std::vector<std::pair<const char*, Kind>> cases = {
      {"None", Kind::None},
      {"True", Kind::Bool},
      {"False", Kind::Bool},
      {"0", Kind::Int},
      {"-7", Kind::Int},
      {"2 ** 100", Kind::Int},
      {"1.5", Kind::Float},
      {"float('nan')", Kind::Float},
      {"'text'", Kind::Str},
      {"''", Kind::Str},
      {"b'raw'", Kind::Bytes},
      {"bytearray(b'xy')", Kind::ByteArray},
      {"memoryview(b'xy')", Kind::MemoryView},
      {"[1, 2]", Kind::List},
      {"(1, 2)", Kind::Tuple},
      {"()", Kind::Tuple},
      {"{'a': 1}", Kind::Dict},
      {"{1, 2}", Kind::Set},
      {"frozenset({1})", Kind::FrozenSet},
      {"datetime.date(2024, 2, 29)", Kind::Date},
      {"datetime.time(12, 30)", Kind::Time},
      {"datetime.datetime(2024, 2, 29, 12, 30)", Kind::DateTime},
      {"datetime.datetime(2024, 2, 29, tzinfo=datetime.timezone.utc)", Kind::DateTime},
      // Subclasses and everything else stay objects.
      {"collections.Counter('aab')", Kind::Other},
      {"collections.OrderedDict(a=1)", Kind::Other},
      {"collections.defaultdict(list)", Kind::Other},
      {"Point(1, 2)", Kind::Other},
      {"Color.RED", Kind::Other},
      {"MyStr('s')", Kind::Other},
      {"MyDateTime(2024, 1, 1)", Kind::Other},
      {"decimal.Decimal('1.5')", Kind::Other},
      {"1j", Kind::Other},
      {"object()", Kind::Other},
      {"range(3)", Kind::Other},
      {"len", Kind::Other},
      {"datetime.timedelta(1)", Kind::Other},
  };
  for (const auto& [expr, kind] : cases) {
    INFO("classify(" << expr << ")");
    PyRef o = py_eval(expr, g.get());
    CHECK(classify(o.get()) == kind);
    CHECK(PyErr_Occurred() == nullptr);
  }
}

TEST_CASE("classify_loose accepts subclasses and abstract mappings and sets", "[values][classify]") {
  Gil gil;
  PyRef g = values_env();
  const std::vector<std::pair<const char*, Kind>> cases = {
      {"collections.Counter('aab')", Kind::Dict},
      {"collections.OrderedDict(a=1)", Kind::Dict},
      {"collections.defaultdict(list)", Kind::Dict},
      {"collections.UserDict(a=1)", Kind::Dict},  // a Mapping, not a dict
      {"types.MappingProxyType({'a': 1})", Kind::Dict},
      {"Point(1, 2)", Kind::Tuple},
      {"Color.RED", Kind::Int},
      {"MyStr('s')", Kind::Str},
      {"MyFloat(1.5)", Kind::Float},
      {"MyList([1])", Kind::List},
      {"MySet({1})", Kind::Set},
      {"MyFrozen({1})", Kind::FrozenSet},
      {"{'a': 1}.keys()", Kind::FrozenSet},  // a collections.abc.Set
      {"MyDate(2024, 1, 1)", Kind::Date},
      {"MyDateTime(2024, 1, 1)", Kind::DateTime},  // a datetime is also a date
      // Exact types are unchanged.
      {"True", Kind::Bool},
      {"[1]", Kind::List},
      {"{}", Kind::Dict},
      // Still nothing to convert.
      {"object()", Kind::Other},
      {"decimal.Decimal('1.5')", Kind::Other},
      {"Sneaky()", Kind::Other},  // isinstance() raises inside the ABC checks
  };
  for (const auto& [expr, kind] : cases) {
    INFO("classify_loose(" << expr << ")");
    PyRef o = py_eval(expr, g.get());
    CHECK(classify_loose(o.get()) == kind);
    CHECK(PyErr_Occurred() == nullptr);
  }
}

TEST_CASE("numpy scalars classify as numbers once numpy is imported", "[values][classify][numpy]") {
  Gil gil;
  PyRef np = check(PyImport_ImportModule("numpy"));
  PyRef g = values_env();
  check_status(PyDict_SetItemString(g.get(), "numpy", np.get()));
  const std::vector<std::pair<const char*, Kind>> cases = {
      {"numpy.int64(5)", Kind::Int},       {"numpy.uint8(7)", Kind::Int},
      {"numpy.int8(-3)", Kind::Int},       {"numpy.float32(1.5)", Kind::Float},
      {"numpy.float64(2.5)", Kind::Float},  // a float subclass, still Float
      {"numpy.bool_(True)", Kind::Bool},   {"numpy.bool_(False)", Kind::Bool},
      {"numpy.complex128(1j)", Kind::Other}, {"numpy.array([1, 2])", Kind::Other},
      {"numpy.str_('x')", Kind::Other},
  };
  for (const auto& [expr, kind] : cases) {
    INFO("classify(" << expr << ")");
    PyRef o = py_eval(expr, g.get());
    CHECK(classify(o.get()) == kind);
    CHECK(PyErr_Occurred() == nullptr);
  }
  // numpy.str_ is a str subclass: loose classification converts it.
  CHECK(classify_loose(py_eval("numpy.str_('x')", g.get()).get()) == Kind::Str);

  int64_t v = 0;
  REQUIRE(int_as_i64(py_eval("numpy.int64(-5)", g.get()).get(), &v));
  CHECK(v == -5);
}

TEST_CASE("int_as_i64 converts in-range ints and reports overflow", "[values][int]") {
  Gil gil;
  const std::vector<std::pair<const char*, int64_t>> in_range = {
      {"0", 0},
      {"1", 1},
      {"-1", -1},
      {"True", 1},
      {"2 ** 63 - 1", INT64_MAX},
      {"-(2 ** 63)", INT64_MIN},
      {"123456789012345", 123456789012345LL},
  };
  for (const auto& [expr, expected] : in_range) {
    INFO(expr);
    int64_t out = 42;
    CHECK(int_as_i64(py_eval(expr).get(), &out));
    CHECK(out == expected);
    CHECK(PyErr_Occurred() == nullptr);
  }
  for (const char* expr : {"2 ** 63", "-(2 ** 63) - 1", "2 ** 200", "-(10 ** 30)"}) {
    INFO(expr);
    int64_t out = 42;
    CHECK_FALSE(int_as_i64(py_eval(expr).get(), &out));
    CHECK(out == 42);  // untouched
    CHECK(PyErr_Occurred() == nullptr);
  }
  // Not an int at all: a Python TypeError, not a silent 0.
  int64_t out = 42;
  CHECK_THROWS_AS(int_as_i64(py_eval("1.5").get(), &out), PythonException);
  CHECK(PyErr_Occurred() == nullptr);
}

TEST_CASE("int_as_big gives the little-endian magnitude and sign", "[values][int]") {
  Gil gil;
  SECTION("0 has an empty magnitude") {
    BigInt b = int_as_big(py_eval("0").get());
    CHECK_FALSE(b.negative);
    CHECK(b.magnitude.empty());
  }
  SECTION("0x0102 and its negation") {
    BigInt b = int_as_big(py_eval("0x0102").get());
    CHECK_FALSE(b.negative);
    CHECK(b.magnitude == std::vector<uint8_t>{0x02, 0x01});
    BigInt n = int_as_big(py_eval("-0x0102").get());
    CHECK(n.negative);
    CHECK(n.magnitude == std::vector<uint8_t>{0x02, 0x01});
  }
  SECTION("255 and 256 at a byte boundary") {
    CHECK(int_as_big(py_eval("255").get()).magnitude == std::vector<uint8_t>{0xFF});
    CHECK(int_as_big(py_eval("256").get()).magnitude == std::vector<uint8_t>{0x00, 0x01});
  }
  SECTION("2**63") {
    BigInt b = int_as_big(py_eval("2 ** 63").get());
    CHECK_FALSE(b.negative);
    CHECK(b.magnitude == std::vector<uint8_t>{0, 0, 0, 0, 0, 0, 0, 0x80});
  }
  SECTION("-(2**63) - 1") {
    BigInt b = int_as_big(py_eval("-(2 ** 63) - 1").get());
    CHECK(b.negative);
    CHECK(b.magnitude == std::vector<uint8_t>{1, 0, 0, 0, 0, 0, 0, 0x80});
  }
  SECTION("256**300 is a one followed by 300 zero bytes") {
    BigInt b = int_as_big(py_eval("256 ** 300").get());
    CHECK_FALSE(b.negative);
    REQUIRE(b.magnitude.size() == 301);
    CHECK(b.magnitude.back() == 1);
    CHECK(std::all_of(b.magnitude.begin(), b.magnitude.end() - 1, [](uint8_t x) { return x == 0; }));
  }
  SECTION("__index__-able objects and non-ints") {
    PyRef g = values_env();
    BigInt b = int_as_big(py_eval("Color.RED", g.get()).get());
    CHECK(b.magnitude == std::vector<uint8_t>{1});
    CHECK_THROWS_AS(int_as_big(py_eval("1.5").get()), PythonException);
    CHECK(PyErr_Occurred() == nullptr);
  }
}

TEST_CASE("int_as_big and int_from_big round-trip any integer", "[values][int]") {
  Gil gil;
  for (const char* expr : {"0", "1", "-1", "255", "-256", "2 ** 63", "-(2 ** 63) - 1", "2 ** 64", "2 ** 200",
                           "-(2 ** 200)", "256 ** 300", "-(256 ** 300) + 1", "3 ** 1000"}) {
    INFO(expr);
    PyRef original = py_eval(expr);
    BigInt b = int_as_big(original.get());
    if (!b.magnitude.empty()) CHECK(b.magnitude.back() != 0);  // no trailing zero bytes
    PyRef back = int_from_big(b);
    CHECK(PyLong_CheckExact(back.get()));
    CHECK(py_equal(back.get(), original.get()));
  }
  // A magnitude that was not trimmed still decodes to the same value.
  BigInt padded{true, {0x02, 0x01, 0x00, 0x00}};
  CHECK(py_equal(int_from_big(padded).get(), py_eval("-258").get()));
  // Negative zero is zero.
  BigInt neg_zero{true, {}};
  CHECK(py_equal(int_from_big(neg_zero).get(), py_eval("0").get()));
}

TEST_CASE("dates and times round-trip through their fields", "[values][calendar]") {
  Gil gil;
  SECTION("date") {
    PyRef d = make_date({2024, 2, 29});
    CHECK(classify(d.get()) == Kind::Date);
    CHECK(py_repr(d.get()) == "datetime.date(2024, 2, 29)");
    DateFields f = date_fields(d.get());
    CHECK((f.year == 2024 && f.month == 2 && f.day == 29));
  }
  SECTION("extreme dates") {
    DateFields lo = date_fields(make_date({1, 1, 1}).get());
    CHECK((lo.year == 1 && lo.month == 1 && lo.day == 1));
    DateFields hi = date_fields(make_date({9999, 12, 31}).get());
    CHECK((hi.year == 9999 && hi.month == 12 && hi.day == 31));
  }
  SECTION("an invalid date is a Python ValueError") {
    try {
      make_date({2023, 2, 29});
      FAIL("no exception");
    } catch (const PythonException& e) {
      CHECK(e.info().type == "ValueError");
    }
    CHECK(PyErr_Occurred() == nullptr);
  }
  SECTION("time") {
    PyRef t = make_time({23, 59, 58, 999999});
    CHECK(classify(t.get()) == Kind::Time);
    CHECK(py_repr(t.get()) == "datetime.time(23, 59, 58, 999999)");
    CHECK_FALSE(time_has_zone(t.get()));
    TimeFields f = time_fields(t.get());
    CHECK((f.hour == 23 && f.minute == 59 && f.second == 58 && f.microsecond == 999999));
    CHECK_THROWS_AS(make_time({24, 0, 0, 0}), PythonException);
    CHECK(PyErr_Occurred() == nullptr);
  }
  SECTION("a time with a tzinfo") {
    PyRef t = py_eval("datetime.time(1, 2, tzinfo=datetime.timezone.utc)");
    CHECK(time_has_zone(t.get()));
  }
  SECTION("naive datetime") {
    PyRef dt = make_datetime({2023, 7, 14}, {8, 30, 15, 250}, nullptr);
    CHECK(classify(dt.get()) == Kind::DateTime);
    CHECK(py_repr(dt.get()) == "datetime.datetime(2023, 7, 14, 8, 30, 15, 250)");
    DateFields d = date_fields(dt.get());
    TimeFields t = time_fields(dt.get());
    CHECK((d.year == 2023 && d.month == 7 && d.day == 14));
    CHECK((t.hour == 8 && t.minute == 30 && t.second == 15 && t.microsecond == 250));
    ZoneFields z{"untouched", "x", 1, 2};
    CHECK_FALSE(zone_fields(dt.get(), &z));
    CHECK(z.name == "untouched");
  }
}

TEST_CASE("aware datetimes round-trip through zone fields", "[values][calendar]") {
  Gil gil;
  SECTION("Europe/Paris in summer and in winter") {
    ZoneFields summer{"Europe/Paris", "CEST", 3600, 3600};
    PyRef dt = make_datetime({2023, 7, 1}, {12, 0, 0, 0}, &summer);
    PyRef g = new_globals();
    check_status(PyDict_SetItemString(g.get(), "dt", dt.get()));
    CHECK(py_str(py_eval("type(dt.tzinfo).__name__ + ' ' + dt.tzinfo.key", g.get()).get()) == "ZoneInfo Europe/Paris");
    ZoneFields z;
    REQUIRE(zone_fields(dt.get(), &z));
    CHECK(z.name == "Europe/Paris");
    CHECK(z.abbr == "CEST");
    CHECK(z.utc_offset == 3600);
    CHECK(z.dst_offset == 3600);
    TimeFields t = time_fields(dt.get());
    CHECK((t.hour == 12 && t.minute == 0));

    ZoneFields winter{"Europe/Paris", "CET", 3600, 0};
    PyRef w = make_datetime({2023, 1, 15}, {9, 0, 0, 0}, &winter);
    REQUIRE(zone_fields(w.get(), &z));
    CHECK(z.name == "Europe/Paris");
    CHECK(z.abbr == "CET");
    CHECK(z.utc_offset == 3600);
    CHECK(z.dst_offset == 0);
  }
  SECTION("a zone west of UTC") {
    ZoneFields ny{"America/New_York", "EDT", -18000, 3600};
    PyRef dt = make_datetime({2023, 7, 4}, {18, 0, 0, 0}, &ny);
    ZoneFields z;
    REQUIRE(zone_fields(dt.get(), &z));
    CHECK(z.name == "America/New_York");
    CHECK(z.abbr == "EDT");
    CHECK(z.utc_offset == -18000);
    CHECK(z.dst_offset == 3600);
  }
}

TEST_CASE("an ambiguous wall time picks the fold whose offset matches", "[values][calendar]") {
  // 2023-10-29 02:30 happens twice in Paris: first at +02:00 (CEST), then at +01:00 (CET).
  Gil gil;
  PyRef g = new_globals();
  auto utcoffset = [&](PyObject* dt) {
    check_status(PyDict_SetItemString(g.get(), "dt", dt));
    return py_int(py_eval("int(dt.utcoffset().total_seconds())", g.get()).get());
  };

  ZoneFields cest{"Europe/Paris", "CEST", 3600, 3600};
  PyRef first = make_datetime({2023, 10, 29}, {2, 30, 0, 0}, &cest);
  CHECK(PyDateTime_DATE_GET_FOLD(first.get()) == 0);
  CHECK(utcoffset(first.get()) == 7200);

  ZoneFields cet{"Europe/Paris", "CET", 3600, 0};
  PyRef second = make_datetime({2023, 10, 29}, {2, 30, 0, 0}, &cet);
  CHECK(PyDateTime_DATE_GET_FOLD(second.get()) == 1);
  CHECK(utcoffset(second.get()) == 3600);

  // Both keep the wall time and round-trip their own offsets.
  ZoneFields z1, z2;
  REQUIRE(zone_fields(first.get(), &z1));
  REQUIRE(zone_fields(second.get(), &z2));
  CHECK((z1.abbr == "CEST" && z1.dst_offset == 3600 && z1.utc_offset == 3600));
  CHECK((z2.abbr == "CET" && z2.dst_offset == 0 && z2.utc_offset == 3600));
  CHECK((time_fields(second.get()).hour == 2 && time_fields(second.get()).minute == 30));
  // One hour apart in absolute time.
  check_status(PyDict_SetItemString(g.get(), "a", first.get()));
  check_status(PyDict_SetItemString(g.get(), "b", second.get()));
  CHECK(py_int(py_eval("int((b - a).total_seconds())", g.get()).get()) == 0);  // same wall time, same zone
  CHECK(py_int(py_eval("int(b.timestamp() - a.timestamp())", g.get()).get()) == 3600);
}

TEST_CASE("Etc/UTC maps to datetime.timezone.utc", "[values][calendar]") {
  Gil gil;
  import_datetime_here();
  ZoneFields utc{"Etc/UTC", "UTC", 0, 0};
  PyRef dt = make_datetime({2024, 3, 1}, {0, 0, 0, 1}, &utc);
  CHECK(PyDateTime_DATE_GET_TZINFO(dt.get()) == PyDateTime_TimeZone_UTC);
  ZoneFields z;
  REQUIRE(zone_fields(dt.get(), &z));
  CHECK(z.name == "Etc/UTC");
  CHECK(z.abbr == "UTC");
  CHECK(z.utc_offset == 0);
  CHECK(z.dst_offset == 0);

  // Any other UTC-like zone found in Python maps back the same way.
  PyRef also_utc = py_eval("datetime.datetime(2024, 3, 1, tzinfo=datetime.timezone(datetime.timedelta(0), 'UTC'))");
  REQUIRE(zone_fields(also_utc.get(), &z));
  CHECK(z.name == "Etc/UTC");
}

TEST_CASE("an unknown zone falls back to a fixed offset named by its abbreviation", "[values][calendar]") {
  Gil gil;
  PyRef g = new_globals();
  SECTION("east of UTC, with a DST part") {
    ZoneFields mars{"Mars/Olympus_Mons", "MOM", 7200, 1800};
    PyRef dt = make_datetime({2024, 5, 6}, {7, 8, 9, 0}, &mars);
    check_status(PyDict_SetItemString(g.get(), "dt", dt.get()));
    CHECK(py_int(py_eval("type(dt.tzinfo) is datetime.timezone", g.get()).get()) == 1);
    CHECK(py_str(py_eval("dt.tzname()", g.get()).get()) == "MOM");
    CHECK(py_int(py_eval("int(dt.utcoffset().total_seconds())", g.get()).get()) == 9000);
    ZoneFields z;
    REQUIRE(zone_fields(dt.get(), &z));
    CHECK(z.name == "MOM");
    CHECK(z.abbr == "MOM");
    CHECK(z.utc_offset + z.dst_offset == 9000);  // a fixed offset cannot keep the split
  }
  SECTION("west of UTC") {
    ZoneFields west{"Nowhere/Else", "NWE", -5 * 3600 - 1800, 0};
    PyRef dt = make_datetime({2024, 5, 6}, {7, 8, 9, 0}, &west);
    ZoneFields z;
    REQUIRE(zone_fields(dt.get(), &z));
    CHECK(z.name == "NWE");
    CHECK(z.utc_offset == -19800);
    CHECK(z.dst_offset == 0);
  }
  CHECK(PyErr_Occurred() == nullptr);
}

TEST_CASE("text_or_bytes returns str for valid UTF-8 and bytes otherwise", "[values][text]") {
  Gil gil;
  auto check_str = [](const std::string& data, const char* expected_repr) {
    INFO("data of " << data.size() << " bytes");
    PyRef o = text_or_bytes(data.data(), data.size());
    CHECK(PyUnicode_CheckExact(o.get()));
    CHECK(py_repr(o.get()) == expected_repr);
  };
  auto check_bytes = [](const std::string& data) {
    INFO("data " << Catch::Detail::stringify(data));
    PyRef o = text_or_bytes(data.data(), data.size());
    REQUIRE(PyBytes_CheckExact(o.get()));
    CHECK(std::string(PyBytes_AS_STRING(o.get()), PyBytes_GET_SIZE(o.get())) == data);
    CHECK(PyErr_Occurred() == nullptr);
  };
  check_str("hello", "'hello'");
  check_str("h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\x90\x8D", "'h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\x90\x8D'");
  check_str(std::string("a\0b", 3), "'a\\x00b'");
  check_str("", "''");
  check_bytes("\xFF\xFE");
  check_bytes("abc\x80");             // stray continuation byte
  check_bytes("\xE2\x82");            // truncated sequence
  check_bytes("\xC0\xAF");            // overlong encoding
  check_bytes("\xED\xA0\x80");        // an encoded surrogate
  check_bytes(std::string("\0\xFF", 2));
}

TEST_CASE("type_name gives the name users see", "[values][names]") {
  Gil gil;
  PyRef g = values_env();
  PyRef np = check(PyImport_ImportModule("numpy"));
  check_status(PyDict_SetItemString(g.get(), "numpy", np.get()));
  const std::vector<std::pair<const char*, const char*>> cases = {
      {"1", "int"},
      {"None", "NoneType"},
      {"'s'", "str"},
      {"collections.Counter()", "collections.Counter"},
      {"collections.OrderedDict()", "collections.OrderedDict"},
      {"datetime.date(2024, 1, 1)", "datetime.date"},
      {"decimal.Decimal(1)", "decimal.Decimal"},
      {"numpy.array([1])", "numpy.ndarray"},
      {"numpy.float32(1)", "numpy.float32"},
      {"Outer.Inner()", "sbtest.values.Outer.Inner"},
      {"Point(1, 2)", "sbtest.values.Point"},
  };
  for (const auto& [expr, expected] : cases) {
    INFO(expr);
    PyRef o = py_eval(expr, g.get());
    CHECK(type_name(o.get()) == expected);
    CHECK(type_name(o.get()) == expected);  // the cached answer is the same
    CHECK(PyErr_Occurred() == nullptr);
  }
}

TEST_CASE("short_repr cuts long reprs with ... and never inside a UTF-8 sequence", "[values][names]") {
  Gil gil;
  SECTION("short reprs are unchanged") {
    CHECK(short_repr(py_eval("'abc'").get(), 10) == "'abc'");
    CHECK(short_repr(py_eval("[1, 2]").get(), 6) == "[1, 2]");  // exactly max_chars
  }
  SECTION("ASCII is cut at max_chars") {
    PyRef o = py_eval("list(range(100))");
    CHECK(short_repr(o.get(), 10) == "[0, 1, 2, ...");
    CHECK(short_repr(o.get(), 0) == "...");
  }
  SECTION("multi-byte characters are never split") {
    // 2-, 3- and 4-byte sequences: é, ✓, 🐍.
    PyRef o = py_eval("'\\u00e9\\u2713\\U0001F40D' * 20");
    std::string full = py_repr(o.get());
    for (size_t max = 0; max <= full.size() + 1; ++max) {
      INFO("max_chars = " << max);
      std::string s = short_repr(o.get(), max);
      CHECK(is_valid_utf8(s));
      if (s == full) {
        CHECK(code_points(full) <= max);
        continue;
      }
      REQUIRE_THAT(s, EndsWith("..."));
      std::string kept = s.substr(0, s.size() - 3);
      CHECK_THAT(full, StartsWith(kept));
      CHECK(code_points(kept) <= max);
      CHECK(kept.size() + 3 >= max);  // backs off at most one partial character
    }
  }
  SECTION("a failing __repr__") {
    PyRef g = new_globals();
    py_exec("class Bad:\n    def __repr__(self):\n        raise ValueError('nope')\n", g.get());
    PyRef o = py_eval("Bad()", g.get());
    CHECK(short_repr(o.get(), 80) == "<repr failed>");
    CHECK(PyErr_Occurred() == nullptr);
  }
}
