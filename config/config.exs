import Config

if config_env() == :test do
  # A pool declared in config, started by the application: the behavioural
  # tests run against it as well as in-process (test/support/backends.ex).
  config :snakebridge, pools: [[name: SnakeBridge.TestPool, size: 2]]
end
