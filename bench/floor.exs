# The floors a worker's round trip is measured against (docs/benchmarks.md,
# "Where a worker's time goes"): a futex hand-off between two threads on the
# same core and on different cores; two C processes handing a message back
# and forth, both polling, through pipes and through shared memory (no BEAM
# in it); and a C echo port, blocking and polling, answered directly and
# through a middleman process as a worker's replies are.
#
#     MIX_ENV=prod mix run bench/floor.exs
Code.require_file("support/timing.exs", __DIR__)

dir = Path.join(System.tmp_dir!(), "snakebridge_floor_#{System.unique_integer([:positive])}")
File.mkdir_p!(dir)
src = Path.expand("floor", __DIR__)
{_, 0} = System.cmd("cc", ["-O2", "-o", Path.join(dir, "echo_port"), Path.join(src, "echo_port.c")])
{_, 0} = System.cmd("c++", ["-O2", "-pthread", "-o", Path.join(dir, "handoff"), Path.join(src, "handoff.cpp")])
{_, 0} = System.cmd("cc", ["-O2", "-o", Path.join(dir, "pingpong"), Path.join(src, "pingpong.c")])

for {a, b} <- [{0, 0}, {0, 1}, {-1, -1}] do
  {out, 0} = System.cmd(Path.join(dir, "handoff"), [to_string(a), to_string(b)])
  IO.write("futex hand-off, " <> out)
end

for how <- ["pipe", "shm"] do
  {out, 0} = System.cmd(Path.join(dir, "pingpong"), [how])
  IO.write(out)
end

defmodule Floor.Middleman do
  def loop(port, waiting) do
    receive do
      {:pending, from} -> loop(port, [from | waiting])
      {^port, {:data, data}} -> Enum.each(waiting, &send(&1, {:reply, data})) && loop(port, [])
    end
  end
end

time = fn f -> BenchTiming.median_us(f, 20_000, 2_000) end

for spin <- ["0", "100"] do
  opts = [:binary, {:packet, 4}, {:env, [{~c"SPIN_US", String.to_charlist(spin)}]}]
  port = Port.open({:spawn_executable, Path.join(dir, "echo_port")}, opts)

  direct =
    time.(fn ->
      Port.command(port, "hello")
      receive do: ({^port, {:data, _}} -> :ok)
    end)

  me = self()
  middleman = spawn(fn -> receive(do: (:go -> Floor.Middleman.loop(port, []))) end)
  Port.connect(port, middleman)
  Process.unlink(port)
  send(middleman, :go)

  forwarded =
    time.(fn ->
      send(middleman, {:pending, me})
      Port.command(port, "hello")
      receive do: ({:reply, _} -> :ok)
    end)

  IO.puts("echo port, polling #{spin} µs: #{direct} µs direct, #{forwarded} µs through a middleman (medians)")
  Port.close(port)
end

File.rm_rf!(dir)
