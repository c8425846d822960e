defmodule SnakeBridge.Backend do
  @moduledoc """
  Where a request runs: `SnakeBridge.Backend.InProcess` (the interpreter
  embedded in this BEAM, through the NIF) or `SnakeBridge.Backend.PortWorker`
  (a port worker's interpreter, through its pipe).

  Both hand the request to the same C++ core, which decides what it means and
  how values map (`docs/architecture.md`), and both answer with the same reply:
  `{:ok, term}` or `{:error, reason}`, `reason` being one of the terms listed in
  `docs/protocol.md` ("Replies"). A backend only moves requests and replies;
  `SnakeBridge.Runtime` keeps the policy (options, routing, the wait for a
  reply, timeouts, retries, exceptions).

  A request that does not finish at once is a `SnakeBridge.Backend.Job`: the
  runtime waits for `{job.ref, message}` (handing `message` to `c:reply/2`),
  for output tagged with `job.ref`, and for the `:DOWN` of `job.monitor` (if
  any), and calls `c:stop/1` when the caller gives up.
  """

  @typedoc "A request tuple, as built by the functions of `SnakeBridge`."
  @type request :: tuple()
  @type mode :: :auto | :ref | :value
  @type reply :: {:ok, term()} | {:error, term()}

  @doc "Starts `request`; `where` says which interpreter (`:nif`, `{:pool, name}`, `{:worker, pid}`)."
  @callback start(request(), mode(), timeout(), where :: term()) ::
              {:done, reply()} | {:running, SnakeBridge.Backend.Job.t()}

  @doc "The reply carried by a message `{job.ref, message}` (or `{:DOWN, reason}` of the monitor)."
  @callback reply(SnakeBridge.Backend.Job.t(), message :: term()) :: reply()

  @doc "Stops a running job: `:stopped` (no reply follows), or the reply that was already on its way."
  @callback stop(SnakeBridge.Backend.Job.t()) :: :stopped | {:replied, reply()}

  @doc "From now on, the job's callbacks (Python calling Elixir) go straight to `runner`."
  @callback route_callbacks(SnakeBridge.Backend.Job.t(), runner :: pid()) :: :ok

  @doc "Releases what the job held (monitors, pool load), once it is over."
  @callback done(SnakeBridge.Backend.Job.t()) :: :ok
end

defmodule SnakeBridge.Backend.Job do
  @moduledoc false
  # A running request: `ref` tags its reply and output, `monitor` (if any)
  # watches the process running it, `state` belongs to the backend.
  defstruct [:backend, :ref, :monitor, :state]

  @type t :: %__MODULE__{backend: module(), ref: reference(), monitor: reference() | nil, state: term()}
end
