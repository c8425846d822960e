# Two entry points (README): `make demo` and `make test`. Each installs what is
# missing (Debian packages when run as root), builds the C++ with CMake and
# compiles the Elixir code.

DEBIAN_PACKAGES := build-essential cmake erlang-dev elixir python3-dev python3-numpy python3-pandas \
  python3-venv python3-packaging libmsgpack-cxx-dev libboost-dev catch2 erlang-proper \
  libpython3.11-testsuite
PYTHON ?= /usr/bin/python3
export SNAKEBRIDGE_PYTHON ?= $(PYTHON)
export MIX_ENV ?= dev
BUILD := _build/cmake

.PHONY: deps build demo test test-cpp test-elixir bench clean

deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Debian packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "Missing Debian packages: $$missing"; \
	    echo "Install them with: sudo apt-get install -y $$missing"; exit 1; \
	  fi; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DSNAKEBRIDGE_PYTHON=$(SNAKEBRIDGE_PYTHON) >/dev/null
	cmake --build $(BUILD) --parallel 2

demo: build
	mix run demo/demo.exs

test-cpp: build
	cd $(BUILD) && ctest --output-on-failure

test-elixir: build
	MIX_ENV=test mix test

test: test-cpp test-elixir

bench: build
	MIX_ENV=prod mix snakebridge.bench

clean:
	rm -rf _build priv/*.so priv/snakebridge_port
