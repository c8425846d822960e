// Python-side halves of the type mapping (docs/type_mapping.md) that both front ends share:
// classifying objects, arbitrary-precision integers as bytes, calendar values as
// fields, text-or-bytes decisions. No wire format here.
#pragma once
#include "pyref.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace sb {

enum class Kind {
  None, Bool, Int, Float, Str, Bytes, ByteArray, MemoryView,
  List, Tuple, Dict, Set, FrozenSet, Date, Time, DateTime,
  ElixirTerm,  // a pid, reference, port or function from Elixir (elixir_terms.hpp)
  Other
};

// Exact builtin types, plus numpy scalars (integers -> Int, floats -> Float,
// numpy.bool_ -> Bool), which the mapping converts as numbers. Subclasses of
// builtins (Counter, OrderedDict, IntEnum...) are Other: they stay objects so their
// methods remain usable; to_elixir converts them with classify_loose.
Kind classify(PyObject* o);
// Also accepts subclasses of the builtins and abstract Mappings and Sets (deep
// conversion). Other sequences (range, UserList) stay Other.
Kind classify_loose(PyObject* o);

// Integers: magnitude as little-endian bytes plus sign, for any size.
struct BigInt {
  bool negative = false;
  std::vector<uint8_t> magnitude;  // little-endian, no trailing zero bytes
};
bool int_as_i64(PyObject* o, int64_t* out);  // false on overflow (no error left set)
BigInt int_as_big(PyObject* o);               // o must be an int (or __index__-able)
PyRef int_from_big(const BigInt& b);

// Calendar values. microsecond 0..999999; utc_offset/dst in seconds.
struct DateFields { int year, month, day; };
struct TimeFields { int hour, minute, second, microsecond; };
struct ZoneFields {
  std::string name;   // IANA key ("Europe/Paris"), "Etc/UTC", or the tzname of a fixed offset
  std::string abbr;   // "CET", "UTC"
  int utc_offset = 0; // standard offset, seconds
  int dst_offset = 0; // daylight saving offset, seconds
};
void ensure_datetime_api();
PyRef make_date(const DateFields& d);
PyRef make_time(const TimeFields& t);
PyRef make_datetime(const DateFields& d, const TimeFields& t, const ZoneFields* zone);
DateFields date_fields(PyObject* o);
TimeFields time_fields(PyObject* o);
bool time_has_zone(PyObject* time);
// False for a naive datetime (or a time zone whose offset is unknown).
bool zone_fields(PyObject* datetime, ZoneFields* out);

// Valid UTF-8 becomes str, anything else bytes.
PyRef text_or_bytes(const char* data, size_t size);

// "collections.Counter", "int", "numpy.ndarray": the name users see for an object.
std::string type_name(PyObject* o);
// repr(o), cut to about max_chars characters.
std::string short_repr(PyObject* o, size_t max_chars);

}  // namespace sb
