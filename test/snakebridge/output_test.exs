defmodule SnakeBridge.OutputTest do
  # What Python writes to sys.stdout / sys.stderr reaches Elixir: stdout the group
  # leader of the process whose call printed it, stderr :standard_error. A call
  # that printed returns only once its output has been written, so capture_io
  # around the call sees all of it, with no sleep or sync. On each backend (the
  # embedded interpreter and a pool of port workers).
  #
  # Not async: stderr capture is global, and some tests borrow the output
  # server's group leader.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO
  import ExUnit.CaptureLog

  alias SnakeBridge.TestBackends

  # Runs `fun` with the output server's group leader replaced by a StringIO;
  # returns {fun's result, what the server wrote there}.
  defp with_server_group_leader(fun) do
    server = Process.whereis(SnakeBridge.Output)
    {:group_leader, original} = Process.info(server, :group_leader)
    {:ok, device} = StringIO.open("")
    Process.group_leader(server, device)

    result =
      try do
        fun.()
      after
        if Process.alive?(server), do: Process.group_leader(server, original)
      end

    {:ok, {_, written}} = StringIO.close(device)
    {result, written}
  end

  for backend <- TestBackends.all() do
    describe "(#{TestBackends.name(backend)})" do
      @backend backend

      test "print() reaches the caller's group leader" do
        assert capture_io(fn -> SnakeBridge.call!("builtins", "print", ["hello"], [], backend: @backend) end) ==
                 "hello\n"

        assert capture_io(fn ->
                 assert SnakeBridge.call("builtins", "print", ["again"], [], backend: @backend) == {:ok, nil}
               end) == "again\n"
      end

      test "print's sep and end keyword arguments, several values, unicode" do
        assert capture_io(fn ->
                 SnakeBridge.call!("builtins", "print", ["a", 1, 2.5, nil], [sep: "-", end: "!"], backend: @backend)
               end) == "a-1-2.5-None!"

        assert capture_io(fn -> SnakeBridge.call!("builtins", "print", ["héllo ✓ 日本"], [], backend: @backend) end) ==
                 "héllo ✓ 日本\n"
      end

      test "many writes from one call arrive complete and in order" do
        out =
          capture_io(fn ->
            SnakeBridge.exec!("for i in range(200):\n    print(i)\nprint('done', end='')", %{}, backend: @backend)
          end)

        assert out == Enum.map_join(0..199, &"#{&1}\n") <> "done"
      end

      test "sys.stdout.write returns the number of characters, like a text stream" do
        out =
          capture_io(fn ->
            assert SnakeBridge.call!("sys", "stdout.write", ["añb"], [], backend: @backend) == String.length("añb")
            assert SnakeBridge.call!("sys", "stdout.isatty", [], [], backend: @backend) == false
          end)

        assert out == "añb"
      end

      test "output of a call that then fails is still delivered" do
        out =
          capture_io(fn ->
            assert {:error, %SnakeBridge.PythonError{type: "ValueError"}} =
                     SnakeBridge.exec("print('before the error')\nraise ValueError('after print')", %{},
                       backend: @backend
                     )
          end)

        assert out == "before the error\n"
      end

      test "repeated captured prints (pool and fast path alike) are each captured" do
        # in-process: enough calls to promote print's call site to the fast path midway
        for i <- 1..40 do
          assert capture_io(fn -> SnakeBridge.call!("builtins", "print", ["line #{i}"], [], backend: @backend) end) ==
                   "line #{i}\n"
        end
      end

      test "each process's output goes to its own group leader" do
        tags = ~w(alpha beta gamma delta)
        backend = @backend

        outputs =
          tags
          |> Enum.map(fn tag ->
            Task.async(fn ->
              capture_io(fn ->
                for i <- 1..25, do: SnakeBridge.call!("builtins", "print", ["#{tag} #{i}"], [], backend: backend)
              end)
            end)
          end)
          |> Task.await_many(10_000)

        for {tag, out} <- Enum.zip(tags, outputs) do
          assert out == Enum.map_join(1..25, &"#{tag} #{&1}\n")
        end
      end

      test "output goes to the group leader the caller had when it printed" do
        # The group leader changes right after the call, as when capture_io returns.
        {:ok, during} = StringIO.open("")
        {:ok, later} = StringIO.open("")
        original = Process.group_leader()

        try do
          Process.group_leader(self(), during)
          SnakeBridge.call!("builtins", "print", ["printed while captured"], [], backend: @backend)
          Process.group_leader(self(), later)
          :sys.get_state(SnakeBridge.Output)
        after
          Process.group_leader(self(), original)
        end

        {:ok, {_, got_during}} = StringIO.close(during)
        {:ok, {_, got_later}} = StringIO.close(later)

        assert {got_during, got_later} == {"printed while captured\n", ""}
      end

      test "sys.stderr goes to :standard_error" do
        err =
          capture_io(:stderr, fn ->
            assert SnakeBridge.call!("sys", "stderr.write", ["err line\n"], [], backend: @backend) ==
                     String.length("err line\n")
          end)

        assert err == "err line\n"

        stderr = SnakeBridge.getattr!("sys", "stderr", backend: @backend)

        err =
          capture_io(:stderr, fn ->
            SnakeBridge.call!("builtins", "print", ["via print"], [file: stderr], backend: @backend)
          end)

        assert err == "via print\n"
      end

      test "stdout and stderr are kept apart" do
        code = "import sys\nprint('to out')\nprint('to err', file=sys.stderr)"

        err =
          capture_io(:stderr, fn ->
            assert capture_io(fn -> SnakeBridge.exec!(code, %{}, backend: @backend) end) == "to out\n"
          end)

        assert err == "to err\n"
      end

      test "output from a thread Python started goes to the output server's group leader" do
        {caller_out, server_out} =
          with_server_group_leader(fn ->
            capture_io(fn ->
              SnakeBridge.exec!(
                """
                import threading
                t = threading.Thread(target=print, args=('from a python thread',))
                t.start()
                t.join()
                print('from the caller')
                """,
                %{},
                backend: @backend
              )

              # the thread's output is not part of the call: wait for it explicitly
              :sys.get_state(SnakeBridge.Output)
            end)
          end)

        assert caller_out == "from the caller\n"
        assert server_out == "from a python thread\n"
      end

      test "output for a caller whose group leader has died goes to the server's group leader" do
        # A closed capture_io device or remote shell: writing to it fails. Nothing
        # may crash (a few SnakeBridge.Output crashes within 5 s would stop
        # :snakebridge); the text goes to the output server's group leader instead.
        server = Process.whereis(SnakeBridge.Output)
        dead = spawn(fn -> :ok end)
        ref = Process.monitor(dead)
        assert_receive {:DOWN, ^ref, :process, ^dead, _}
        original = Process.group_leader()

        {{result, log}, fallback} =
          with_server_group_leader(fn ->
            with_log(fn ->
              try do
                Process.group_leader(self(), dead)
                result = SnakeBridge.call("builtins", "print", ["to a dead group leader"], [], backend: @backend)
                # the fallback is written by the server, after the call returned
                :sys.get_state(server)
                result
              catch
                :exit, reason -> {:exit, reason}
              after
                Process.group_leader(self(), original)
              end
            end)
          end)

        crashed? = not Process.alive?(server)
        wait_for_output_server()

        refute crashed?, "SnakeBridge.Output crashed:\n#{log}"
        assert result == {:ok, nil}
        assert fallback == "to a dead group leader\n"
        assert Process.whereis(SnakeBridge.Output) == server
      end
    end
  end

  # After a crash the supervisor restarts the server; wait for it so that other
  # tests are unaffected.
  defp wait_for_output_server(tries \\ 100) do
    case Process.whereis(SnakeBridge.Output) do
      pid when is_pid(pid) ->
        :sys.get_state(pid)

      nil when tries > 0 ->
        Process.sleep(10)
        wait_for_output_server(tries - 1)
    end
  end
end
