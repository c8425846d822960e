// Atoms the NIF uses, created once at load.
#pragma once
#include <erl_nif.h>

namespace sb::nif {

#define SB_ATOMS(X)                                                                         \
  X(ok) X(error) X(nil) X(true_, "true") X(false_, "false") X(infinity) X(neg_infinity)      \
  X(nan) X(pending) X(python) X(unconvertible) X(conversion) X(__struct__)                   \
  X(calendar) X(year) X(month) X(day) X(hour) X(minute) X(second) X(microsecond)          \
  X(time_zone) X(zone_abbr) X(utc_offset) X(std_offset) X(map) X(version) X(ref) X(type)   \
  X(owner) X(data) X(auto_, "auto") X(value) X(cancelled) X(sent) X(stdout_, "stdout")      \
  X(stderr_, "stderr") X(snakebridge_output) X(call) X(getattr) X(setattr) X(eval) X(exec)  \
  X(to_elixir) X(describe) X(repr) X(next) X(close) X(cont) X(done) X(output) X(reason) X(unhashable) X(collision) X(too_deep) X(info)             \
  X(elixir_calendar_iso, "Elixir.Calendar.ISO") X(elixir_date, "Elixir.Date")               \
  X(elixir_time, "Elixir.Time") X(elixir_naive, "Elixir.NaiveDateTime")                     \
  X(elixir_datetime, "Elixir.DateTime") X(elixir_mapset, "Elixir.MapSet")                   \
  X(elixir_object, "Elixir.SnakeBridge.Object") X(elixir_bytes, "Elixir.SnakeBridge.Bytes") \
  X(elixir_array, "Elixir.SnakeBridge.Array") X(shape) X(not_array) X(to_array) X(to_columns)  \
  X(output_server, "Elixir.SnakeBridge.Output") X(not_started) X(timeout) X(snakebridge_release) X(snakebridge_releases) \
  X(pending_releases) X(threads) X(bound_processes) X(busy_threads) X(max_threads) X(wedged_calls) X(scheduler_calls) X(paths)     \
  X(pythonpath) X(spin_us) X(fast_path) X(message) X(__exception__) X(snakebridge_callback)                       \
  X(type_error) X(abandoned) X(frame) X(drain) X(snakebridge_unclaimed) X(snakebridge_notice)    \
  X(snakebridge_port_callback) X(wait) X(more) X(eof) X(undefined) X(none) X(handed_callbacks) X(busy_found) X(machine_busy) X(busy) X(closed) X(closed_notified) X(callbacks_server, "Elixir.SnakeBridge.Callbacks")

struct Atoms {
#define SB_DECLARE_ATOM(name, ...) ERL_NIF_TERM name;
  SB_ATOMS(SB_DECLARE_ATOM)
#undef SB_DECLARE_ATOM
};

extern Atoms atoms;
void make_atoms(ErlNifEnv* env);

}  // namespace sb::nif
