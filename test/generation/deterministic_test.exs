defmodule SnakeBridge.DeterministicGenerationTest do
  # Committed generated code must not get noisy diffs: the same library gives
  # the same bytes, whichever interpreter described it (memory addresses in
  # default values and signatures, e.g. difflib's
  # `charjunk=<function IS_CHARACTER_JUNK at 0x7f...>`, differ between runs).
  use ExUnit.Case, async: false

  alias SnakeBridge.Generator

  test "generating difflib from two interpreters gives byte-identical files" do
    start_supervised!({SnakeBridge.Pool, name: SnakeBridge.DeterministicGenerationTest.Pool, size: 1})
    in_process = SnakeBridge.describe_library!("difflib")
    worker = SnakeBridge.describe_library!("difflib", backend: {:pool, SnakeBridge.DeterministicGenerationTest.Pool})

    refute inspect(in_process, limit: :infinity, printable_limit: :infinity) =~ ~r/ at 0x[0-9a-f]+/
    files = fn schema -> Generator.files(schema, module: SnakeBridge.DeterministicGenerationTest.Difflib) end
    assert files.(in_process) == files.(worker)
  end
end
