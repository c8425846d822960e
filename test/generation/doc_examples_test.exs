defmodule SnakeBridge.Generation.DocExamplesTest do
  # The `iex>` examples of docs/generated_modules.md run: each ```elixir block
  # that has them compiles its `defmodule ... use SnakeBridge` part (against the
  # real libraries), then evaluates every `iex>` expression in order, in one
  # binding, and compares the value with the line below it when there is one.
  use ExUnit.Case, async: true

  @doc_file Path.expand("../../docs/generated_modules.md", __DIR__)
  @external_resource @doc_file

  @moduletag timeout: 120_000

  @blocks @doc_file
          |> File.read!()
          |> then(&Regex.scan(~r/```elixir\n(.*?)```/s, &1, capture: :all_but_first))
          |> List.flatten()
          |> Enum.filter(&String.contains?(&1, "iex>"))

  test "the document has runnable examples" do
    assert length(@blocks) >= 3
  end

  for {block, i} <- Enum.with_index(@blocks, 1) do
    [first | _] = String.split(block, "\n", parts: 2)

    test "example #{i} of docs/generated_modules.md (#{first})" do
      run(unquote(block))
    end
  end

  defp run(block) do
    {modules, session} = Enum.split_while(String.split(block, "\n"), &(not String.starts_with?(&1, "iex>")))
    Code.compile_string(Enum.join(modules, "\n"), "docs/generated_modules.md")

    session
    |> steps([])
    |> Enum.reduce([], fn {expression, expected}, binding ->
      {value, binding} = Code.eval_string(expression, binding, file: "docs/generated_modules.md")

      if expected do
        {wanted, _} = Code.eval_string(expected)
        assert value == wanted, "#{expression}\nexpected: #{expected}\ngot: #{inspect(value)}"
      end

      binding
    end)
  end

  # [{expression, expected | nil}]
  defp steps(["iex> " <> expression | rest], acc) do
    {expected, rest} = Enum.split_while(rest, &(&1 != "" and not String.starts_with?(&1, "iex>")))
    expected = if expected == [], do: nil, else: Enum.join(expected, "\n")
    steps(rest, [{expression, expected} | acc])
  end

  defp steps([_ | rest], acc), do: steps(rest, acc)
  defp steps([], acc), do: Enum.reverse(acc)
end
