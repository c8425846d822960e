defmodule SnakeBridge.ImportInterruptTest do
  # A timeout, cancel or dead caller during a module's first import must not
  # poison the module. An interrupt never lands inside an import (the import
  # machinery, the module-level code of the module being imported, a
  # time.sleep there): it is delivered once the import has finished
  # (docs/backends.md, "Timeouts"). The caller still gets its TimeoutError at
  # the deadline; the module ends up complete, in sys.modules, imported once.
  #
  # Each test writes fresh modules (a module is imported once per interpreter)
  # whose body takes ~300 ms, logs its run in `sb_import_log.runs`, and defines
  # `ready()` and `done` at its very end: a module cut short lacks them.
  #
  # Not async: the elapsed-time bounds need the machine to themselves.
  use ExUnit.Case, async: false

  import SnakeBridge.Test.Helpers

  alias SnakeBridge.{Pool, TestBackends, TimeoutError}

  @bodies %{
    loop: "t = time.monotonic() + 0.3\nwhile time.monotonic() < t:\n    pass\n",
    sleep: "time.sleep(0.3)\n"
  }

  setup_all do
    dir = Path.join(System.tmp_dir!(), "sb_import_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    File.write!(Path.join(dir, "sb_import_log.py"), "runs = []\n")
    on_exit(fn -> File.rm_rf!(dir) end)
    %{dir: dir}
  end

  defp elapsed_ms(fun) do
    started = System.monotonic_time(:millisecond)
    result = fun.()
    {System.monotonic_time(:millisecond) - started, result}
  end

  # Where a module may have been imported: the interpreter in the BEAM, or each
  # worker of the pool (the pool picks one for the import).
  defp interpreters(:nif), do: [:nif]
  defp interpreters({:pool, pool}), do: for({pid, _node} <- Pool.workers(pool), do: {:worker, pid})

  # Writes a fresh module and puts `dir` on sys.path of every interpreter of `backend`.
  defp new_module(dir, backend, kind) do
    name = "sb_slow_#{kind}_#{System.unique_integer([:positive])}"

    File.write!(Path.join(dir, name <> ".py"), """
    import sb_import_log, time
    sb_import_log.runs.append(__name__)
    #{@bodies[kind]}
    def ready():
        return 42
    done = True
    """)

    for target <- interpreters(backend) do
      SnakeBridge.exec!(
        "import importlib, sys\nif d not in sys.path:\n    sys.path.insert(0, d)\nimportlib.invalidate_caches()",
        %{"d" => dir},
        backend: target
      )
    end

    name
  end

  defp import_code(name), do: "import #{name}\nimported = True"

  # {present, done, runs} of module `name` in one interpreter (without waiting
  # for an import in progress: sys.modules is read directly).
  defp module_state(target, name) do
    SnakeBridge.eval!(
      "(lambda m, log: (m is not None, bool(getattr(m, 'done', False)), log.runs.count(n) if log else 0))" <>
        "(__import__('sys').modules.get(n), __import__('sys').modules.get('sb_import_log'))",
      %{"n" => name},
      backend: target
    )
  end

  # Waits for the import to complete somewhere; returns the interpreter that has it.
  defp assert_imported_once(backend, name) do
    targets = interpreters(backend)

    complete = fn ->
      Enum.find(targets, fn t -> match?({true, true, _}, module_state(t, name)) end)
    end

    assert wait_until(3_000, fn -> complete.() != nil end),
           "#{name} never completed: #{inspect(Enum.map(targets, &{&1, module_state(&1, name)}))}"

    target = complete.()
    assert {true, true, 1} = module_state(target, name)
    assert SnakeBridge.call!(name, "ready", [], [], backend: target) == 42
    # and it was not imported again meanwhile
    assert {true, true, 1} = module_state(target, name)
    target
  end

  for backend <- TestBackends.all() do
    describe "(#{TestBackends.name(backend)})" do
      @backend backend

      for kind <- [:loop, :sleep] do
        @kind kind
        test "a timeout during a first import (#{kind}) is delivered when it finishes; the module is complete",
             %{dir: dir} do
          for _ <- 1..3 do
            name = new_module(dir, @backend, @kind)

            {ms, result} =
              elapsed_ms(fn -> SnakeBridge.exec(import_code(name), %{}, timeout: 50, backend: @backend) end)

            assert {:error, %TimeoutError{timeout: 50}} = result
            # The caller's TimeoutError comes at the deadline; the bound also
            # allows for one that waits for the import (~300 ms) to finish.
            assert ms < 2_000, "took #{ms} ms"

            assert_imported_once(@backend, name)
          end
        end
      end

      test "a caller's death and cancel/1 during a first import are delivered when it finishes", %{dir: dir} do
        name = new_module(dir, @backend, :loop)
        pid = spawn(fn -> SnakeBridge.exec(import_code(name), %{}, timeout: :infinity, backend: @backend) end)
        Process.sleep(60)
        Process.exit(pid, :kill)
        assert_imported_once(@backend, name)

        name = new_module(dir, @backend, :sleep)
        async = SnakeBridge.async_call("importlib", "import_module", [name], [], backend: @backend)
        Process.sleep(60)
        assert SnakeBridge.cancel(async) == :ok
        assert_imported_once(@backend, name)
      end

      test "callers of a module whose import times out meanwhile see the complete module", %{dir: dir} do
        for _ <- 1..3 do
          name = new_module(dir, @backend, :loop)
          # One interpreter for all: a worker of the pool, which the concurrent
          # callers must share with the import.
          [target | _] = interpreters(@backend)

          importer = Task.async(fn -> SnakeBridge.exec(import_code(name), %{}, timeout: 50, backend: target) end)

          # Once the module is in sys.modules (its body running), others use it.
          assert wait_until(2_000, fn -> match?({true, _, _}, module_state(target, name)) end)

          callers =
            for _ <- 1..4 do
              Task.async(fn -> SnakeBridge.call(name, "ready", [], [], backend: target, timeout: 5_000) end)
            end

          assert {:error, %TimeoutError{}} = Task.await(importer, 5_000)
          for caller <- callers, do: assert(Task.await(caller, 6_000) == {:ok, 42})
          assert {true, true, 1} = module_state(target, name)
        end
      end
    end
  end
end
