defmodule SnakeBridge.Generator.Docstring do
  @moduledoc """
  Python docstrings as Markdown for the `@doc` of generated modules, so that they
  read well in IEx's `h` and in ExDoc.

  Docstrings are reStructuredText, often in the numpydoc or Google layout, with
  doctests. The conversion keeps the text and changes its markup:

    * `>>>` doctest blocks and literal blocks (a paragraph ending in `::`,
      `.. code-block::`, `.. math::`, tables) become code blocks;
    * numpydoc sections (`Parameters` over a line of dashes) and Google sections
      (`Args:` over an indented block) become `##` headings, their entries
      (`name : type` then an indented description) list items:
      ``* `name` (type) - description``; Sphinx fields (`:param x:`) likewise;
    * roles (``:func:`numpy.sum` ``, ``:class:`~a.B` ``) and RST double-backtick
      literals become code spans, `` `text <url>`_ `` a link;
    * admonitions (`.. note::`, `.. warning::`) become a bold label before their
      text, `.. versionadded::` and friends an italic line;
    * a first paragraph that is the callable's signature (`array(object, ...)`,
      common in C functions) becomes a code block;
    * anything Markdown would take for markup that the docstring meant as text
      (`<wink>`, a line starting with `#`) is escaped.

  Deterministic and pure: the same docstring always gives the same Markdown.
  """

  @definition_sections ~w(parameters params arguments args other_parameters other_params keyword_args
                          keyword_arguments kwargs returns return yields yield receives raises raise
                          exceptions except warns attributes methods see_also)

  @google_titles ~w(Args Arguments Parameters Params Kwargs Returns Return Yields Yield Raises Raise
                    Exceptions Warns Attributes Methods Example Examples Note Notes Todo References
                    Warning Warnings Receives) ++
                   ["Keyword Args", "Keyword Arguments", "Other Parameters", "See Also"]

  @admonitions ~w(note warning tip important hint caution danger attention error seealso admonition)
  @code_directives ~w(code-block code sourcecode doctest testcode testoutput math ipython highlight literalinclude)

  @doc """
  The docstring `doc` as Markdown.

      iex> SnakeBridge.Generator.Docstring.to_markdown("Sum.\\n\\nParameters\\n----------\\nx : int\\n    A number.\\n\\n>>> f(1)\\n2")
      "Sum.\\n\\n## Parameters\\n\\n* `x` (int) - A number.\\n\\n```python\\n>>> f(1)\\n2\\n```"
  """
  @spec to_markdown(String.t()) :: String.t()
  def to_markdown(doc) when is_binary(doc) do
    lines =
      doc
      |> String.replace(["\r\n", "\r"], "\n")
      |> String.replace("\t", "    ")
      |> String.split("\n")
      |> Enum.map(&String.trim_trailing/1)
      |> dedent()
      |> drop_blank()

    {signature, rest} = signature_paragraph(lines)
    Enum.join(signature ++ blocks(rest), "\n\n")
  end

  # C functions document their call on the first lines: `array(object, dtype=None,
  # ...)`, `range(stop) -> range object`. Shown as written, not reflowed.
  defp signature_paragraph([first | _] = lines) do
    if first =~ ~r/^(async\s+)?[A-Za-z_][\w.]*\s*\(/ do
      {paragraph, rest} = Enum.split_while(lines, &(not blank?(&1)))
      {[fence(paragraph, "")], rest}
    else
      {[], lines}
    end
  end

  defp signature_paragraph([]), do: {[], []}

  # ------------------------------------------------------------------ blocks

  defp blocks(lines), do: lines |> drop_blank() |> blocks([])

  defp blocks([], acc), do: Enum.reverse(acc)

  defp blocks(lines, acc) do
    {out, rest} = block(lines)
    acc = if out in [nil, ""], do: acc, else: [out | acc]
    blocks(drop_blank(rest), acc)
  end

  defp block([line | rest] = lines) do
    cond do
      indent(line) > 0 ->
        # A block quote in reStructuredText: its content, unindented (Markdown
        # would make an indented block code).
        {body, rest} = take_indented(lines)
        {body |> dedent() |> blocks() |> Enum.join("\n\n"), rest}

      doctest?(line) ->
        {code, rest} = Enum.split_while(lines, &(not blank?(&1)))
        {fence(code, "python"), rest}

      section_title?(lines) ->
        {body, rest} = rest |> tl() |> split_section([])
        {section(String.trim(line), body), rest}

      google_header?(lines) ->
        {body, rest} = take_indented(rest)
        {section(line |> String.trim() |> String.trim_trailing(":"), dedent(body)), rest}

      Regex.match?(~r/^\.\.(\s|$)/, line) ->
        directive(lines)

      field?(line) ->
        fields(lines)

      table?(line) ->
        {table, rest} = Enum.split_while(lines, &(not blank?(&1)))
        {fence(table, ""), rest}

      list_marker(line) ->
        list(lines)

      true ->
        paragraph(lines)
    end
  end

  defp paragraph([first | rest]) do
    {more, rest} = take_paragraph(rest, [])
    para = [first | more]

    case rest do
      [next | _] when next != "" and binary_part(next, 0, 1) == " " ->
        # `term` directly over an indented definition: a definition list item.
        # A term that is a name is a parameter (Argument Clinic's docstrings:
        # `data` over `Binary data to be compressed.`), shown as the entries
        # of a Parameters section are.
        {definition, rest} = take_indented(rest)
        {before, [term]} = Enum.split(para, -1)

        item =
          if String.trim(term) =~ ~r/^\*{0,2}[A-Za-z_]\w*$/,
            do: list_item("* ", names_md(term), definition |> dedent() |> blocks(), " - "),
            else: list_item("* ", inline(term), definition |> dedent() |> blocks())

        {Enum.join(Enum.reject([paragraph_text(before), item], &(&1 == "")), "\n\n"), rest}

      _ ->
        literal_after(para, rest)
    end
  end

  defp take_paragraph([line | rest] = lines, acc) do
    if paragraph_line?(line) and not section_title?(lines),
      do: take_paragraph(rest, [line | acc]),
      else: {Enum.reverse(acc), lines}
  end

  defp take_paragraph([], acc), do: {Enum.reverse(acc), []}

  defp paragraph_line?(line) do
    not blank?(line) and indent(line) == 0 and not doctest?(line) and not field?(line) and
      list_marker(line) == nil and not Regex.match?(~r/^\.\.(\s|$)/, line)
  end

  # `Paragraph::` announces a literal block: `Paragraph:` then the block as code.
  defp literal_after(para, rest) do
    last = List.last(para)

    if String.ends_with?(last, "::") do
      text =
        cond do
          String.trim(last) == "::" -> Enum.drop(para, -1)
          String.ends_with?(last, " ::") -> List.replace_at(para, -1, String.trim_trailing(last, " ::"))
          true -> List.replace_at(para, -1, String.slice(last, 0..-2//1))
        end

      case drop_blank(rest) do
        [next | _] = after_blank ->
          if indent(next) > 0 do
            {code, rest} = take_indented(after_blank)
            {Enum.join(Enum.reject([paragraph_text(text), fence(dedent(code), "")], &(&1 == "")), "\n\n"), rest}
          else
            {paragraph_text(text), rest}
          end

        [] ->
          {paragraph_text(text), rest}
      end
    else
      {paragraph_text(para), rest}
    end
  end

  # Lines laid out in columns ('- '    line unique to sequence 1) keep their layout.
  defp paragraph_text([_, _ | _] = lines) do
    if Enum.all?(lines, &(&1 =~ ~r/\S {3,}\S/)), do: fence(lines, ""), else: paragraph_lines(lines)
  end

  defp paragraph_text(lines), do: paragraph_lines(lines)

  defp paragraph_lines(lines), do: Enum.map_join(lines, "\n", &(&1 |> String.trim() |> escape_line() |> inline()))

  # ------------------------------------------------------------------ sections

  # A section's body runs to the next section title.
  defp split_section([_ | rest] = lines, acc) do
    if section_title?(lines), do: {Enum.reverse(acc), lines}, else: split_section(rest, [hd(lines) | acc])
  end

  defp split_section([], acc), do: {Enum.reverse(acc), []}

  defp section(title, body) do
    key = title |> String.downcase() |> String.replace(~r/[\s-]+/, "_")
    heading = "## " <> title

    content =
      if key in @definition_sections do
        # Entries up to anything that cannot be one (a doctest, a directive).
        {entries, rest} =
          body |> dedent() |> drop_blank() |> Enum.split_while(&(not (doctest?(&1) or &1 =~ ~r/^\.\.\s/)))

        list = entries |> entries() |> Enum.map_join("\n", &entry(&1, key))
        Enum.join(Enum.reject([list | blocks(rest)], &(&1 == "")), "\n\n")
      else
        body |> blocks() |> Enum.join("\n\n")
      end

    if content == "", do: heading, else: heading <> "\n\n" <> content
  end

  defp entries([]), do: []

  defp entries([head | rest]) do
    {body, rest} = take_indented(rest)
    [{head, dedent(body)} | entries(drop_blank(rest))]
  end

  # numpydoc: `name : type` over an indented description; Google: `name (type): description`.
  defp entry({head, body}, section) do
    head = String.trim(head)

    {names, type, first} =
      cond do
        section == "see_also" ->
          case String.split(head, ~r/\s+:\s*/, parts: 2) do
            [names, text] -> {names, nil, text}
            [names] -> {names, nil, nil}
          end

        match = Regex.run(~r/^(.+?)\s+:\s*(.*)$/, head) ->
          [_, names, type] = match
          {names, type, nil}

        match = Regex.run(~r/^(\*{0,2}[\w.]+(?:\s*,\s*\*{0,2}[\w.]+)*)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$/, head) ->
          [_, names, type, text] = match ++ List.duplicate("", 4 - length(match))
          {names, type, text}

        true ->
          {head, nil, nil}
      end

    description = if first in [nil, ""], do: body, else: [first | body]
    label = names_md(names) <> if(type in [nil, ""], do: "", else: " (#{inline(type)})")
    list_item("* ", label, description |> blocks(), " - ")
  end

  defp names_md(names) do
    names
    |> String.split(",")
    |> Enum.map_join(", ", fn name ->
      name = String.trim(name)
      if name =~ ~r/^\*{0,2}[A-Za-z_][\w.]*(\(\))?$/, do: "`#{name}`", else: inline(name)
    end)
  end

  # ------------------------------------------------------------------ lists

  defp list_marker(line) do
    case Regex.run(~r/^([-*+\x{2022}]|\d+[.)]|#\.|\(\d+\))( +)\S/u, line) do
      [_, marker, spaces] -> {marker, String.length(marker) + String.length(spaces)}
      nil -> nil
    end
  end

  defp list(lines) do
    {items, rest} = list_items(lines, [])
    {Enum.join(items, "\n"), rest}
  end

  defp list_items([line | rest] = lines, acc) do
    case list_marker(line) do
      {marker, width} ->
        {body, rest} = take_indented(rest)
        text = String.slice(line, width..-1//1)
        bullet = if marker =~ ~r/^[-*+\x{2022}]$/u, do: "* ", else: ordered(marker, length(acc))
        content = [text | dedent(body)] |> blocks()
        list_items(rest, [list_item(bullet, nil, content) | acc])

      nil ->
        {Enum.reverse(acc), lines}
    end
  end

  defp list_items([], acc), do: {Enum.reverse(acc), []}

  defp ordered(marker, index) do
    case Integer.parse(String.trim_leading(marker, "(")) do
      {n, _} -> "#{n}. "
      :error -> "#{index + 1}. "
    end
  end

  # A list item: the label and the first block of its content on the marker's
  # line, later blocks indented under it.
  defp list_item(bullet, label, blocks, separator \\ " ") do
    pad = String.duplicate(" ", String.length(bullet))

    {first, more} =
      case blocks do
        [b | more] when label == nil -> {b, more}
        [b | more] -> if(single_paragraph?(b), do: {label <> separator <> b, more}, else: {label, blocks})
        [] -> {label || "", []}
      end

    [first | more]
    |> Enum.join("\n\n")
    |> String.split("\n")
    |> Enum.with_index()
    |> Enum.map_join("\n", fn
      {line, 0} -> bullet <> line
      {"", _} -> ""
      {line, _} -> pad <> line
    end)
  end

  defp single_paragraph?(block), do: not String.starts_with?(block, ["```", "* ", "## "]) and not (block =~ ~r/^\d+\. /)

  # ------------------------------------------------------------------ directives

  defp directive([line | rest]) do
    {body, rest} = take_indented(rest)
    body = body |> dedent() |> Enum.drop_while(&(&1 =~ ~r/^:[\w-]+:/))

    out =
      case Regex.run(~r/^\.\.\s+([\w:-]+)::\s*(.*)$/, line) do
        [_, name, arg] -> directive(String.downcase(name), String.trim(arg), body)
        nil -> comment(line, body)
      end

    {out, rest}
  end

  defp directive(name, arg, body) when name in @code_directives do
    code = if arg != "" and name == "math", do: [arg | body], else: body
    fence(code |> drop_blank(), if(name in ~w(doctest ipython) or arg == "python", do: "python", else: ""))
  end

  defp directive(name, arg, body) when name in @admonitions do
    label =
      case name do
        "seealso" -> "See also"
        "admonition" -> arg
        _ -> String.capitalize(name)
      end

    text = if name == "admonition" or arg == "", do: body, else: [arg | body]
    labelled("**#{label}:**", blocks(text))
  end

  defp directive(name, arg, body) when name in ~w(versionadded versionchanged deprecated) do
    label =
      case name do
        "versionadded" -> "*New in version #{arg}.*"
        "versionchanged" -> "*Changed in version #{arg}.*"
        "deprecated" -> "*Deprecated since version #{arg}.*"
      end

    labelled(label, blocks(body))
  end

  defp directive("rubric", arg, _body), do: "**#{inline(arg)}**"
  defp directive(name, _arg, _body) when name in ~w(image figure index toctree currentmodule module), do: nil

  defp directive(_name, arg, body) do
    text = if arg == "", do: body, else: [arg | body]
    text |> blocks() |> Enum.join("\n\n")
  end

  # `.. [1] Citation` is kept; other comments and targets (`.. _label:`) are not.
  defp comment(line, body) do
    case Regex.run(~r/^\.\.\s+(\[[^\]]+\])\s*(.*)$/, line) do
      [_, label, text] -> labelled(escape_brackets(label), blocks([text | body]))
      nil -> nil
    end
  end

  defp escape_brackets(label), do: String.replace(label, "[", "\\[")

  defp labelled(label, [first | more]) do
    if single_paragraph?(first),
      do: Enum.join([label <> " " <> first | more], "\n\n"),
      else: Enum.join([label | [first | more]], "\n\n")
  end

  defp labelled(label, []), do: label

  # ------------------------------------------------------------------ fields

  @field ~r/^:([A-Za-z][\w -]*?)(?:\s+([^:]+?))?:(?:\s+(.*))?$/

  defp field?(line), do: Regex.match?(@field, line)

  # Sphinx fields: `:param x: text`, `:type x: int`, `:returns: text`,
  # `:rtype: int`, `:raises ValueError: text`; others (numpy's `:Character code:`)
  # stay a list of `name: value`.
  defp fields(lines) do
    {items, rest} = take_fields(lines, [])
    one_line = &(&1 |> Enum.map(fn l -> String.trim(l) end) |> Enum.join(" ") |> String.trim())
    types = for {kind, arg, text} <- items, kind in ~w(type vartype), into: %{}, do: {arg, one_line.(text)}
    rtype = Enum.find_value(items, fn {kind, _, text} -> kind in ~w(rtype ytype) && one_line.(text) end)

    grouped =
      Enum.group_by(items, fn {kind, _, _} -> field_section(kind) end, fn {kind, arg, text} ->
        case field_section(kind) do
          section when section in ["Parameters", "Attributes"] -> {arg, types[arg], text}
          section when section in ["Returns", "Yields"] -> {nil, rtype, text}
          "Raises" -> {arg, nil, text}
          _ -> {kind, arg, text}
        end
      end)

    generic =
      for {kind, arg, text} <- Map.get(grouped, :other, []) do
        label = String.capitalize(kind) <> if(arg in [nil, ""], do: "", else: " " <> arg)
        list_item("* ", label <> ":", blocks(text))
      end

    sections =
      for title <- ["Parameters", "Attributes", "Returns", "Yields", "Raises"], Map.has_key?(grouped, title) do
        entries =
          for {name, type, text} <- grouped[title] do
            label =
              [if(name in [nil, ""], do: nil, else: names_md(name)), if(type, do: "(#{inline(type)})")]
              |> Enum.reject(&is_nil/1)
              |> Enum.join(" ")

            list_item("* ", if(label == "", do: nil, else: label), blocks(text), " - ")
          end

        "## #{title}\n\n" <> Enum.join(entries, "\n")
      end

    {Enum.join(Enum.reject([Enum.join(generic, "\n") | sections], &(&1 == "")), "\n\n"), rest}
  end

  defp take_fields([line | rest] = lines, acc) do
    case Regex.run(@field, line) do
      [_ | captures] ->
        [kind, arg, text] = captures ++ List.duplicate("", 3 - length(captures))
        {body, rest} = take_indented(rest)
        kind = String.downcase(String.trim(kind))
        take_fields(drop_blank(rest), [{kind, String.trim(arg), [text | dedent(body)]} | acc])

      nil ->
        {Enum.reverse(acc), lines}
    end
  end

  defp take_fields([], acc), do: {Enum.reverse(acc), []}

  defp field_section(kind) do
    cond do
      kind in ~w(param parameter arg argument key keyword) -> "Parameters"
      kind in ~w(var ivar cvar) -> "Attributes"
      kind in ~w(returns return) -> "Returns"
      kind in ~w(yields yield) -> "Yields"
      kind in ~w(raises raise except exception) -> "Raises"
      kind in ~w(type rtype ytype vartype) -> :types
      true -> :other
    end
  end

  # ------------------------------------------------------------------ inline

  @inline ~r/:(?:[\w-]+:)+`[^`]+`|``.+?``|`[^`]+`__?|`[^`]+`/

  # reStructuredText inline markup to Markdown, outside code spans.
  defp inline(text) do
    @inline
    |> Regex.split(text, include_captures: true)
    |> Enum.map_join(fn piece ->
      cond do
        piece =~ ~r/^:(?:[\w-]+:)+`/ -> role(piece)
        String.starts_with?(piece, "``") and String.length(piece) > 4 -> code(String.slice(piece, 2..-3//1))
        piece =~ ~r/^`[^`]+`__?$/ -> link(piece |> String.trim_trailing("_") |> String.slice(1..-2//1))
        piece =~ ~r/^`[^`]+`$/ -> piece
        true -> escape_text(piece)
      end
    end)
  end

  # :func:`numpy.sum` -> `numpy.sum`; :class:`~numpy.ndarray` -> `ndarray`;
  # :ref:`title <target>` -> `title`.
  defp role(piece) do
    [_, content] = Regex.run(~r/`([^`]+)`$/, piece)

    content =
      case Regex.run(~r/^(.*?)\s*<[^>]+>$/s, content) do
        [_, title] when title != "" -> title
        _ -> content
      end

    content = String.trim_leading(content, "!")

    content =
      if String.starts_with?(content, "~"),
        do: content |> String.trim_leading("~") |> String.split(".") |> List.last(),
        else: content

    code(content)
  end

  defp link(content) do
    case Regex.run(~r/^(.*?)\s*<([^>]+)>$/s, content) do
      [_, title, url] -> "[#{if title == "", do: url, else: title}](#{url})"
      nil -> content
    end
  end

  defp code(text) do
    if String.contains?(text, "`"), do: "`` #{text} ``", else: "`#{text}`"
  end

  # Text Markdown would read as markup: `<wink>` as an HTML tag, `__init__` and
  # an unclosed `**kwargs` as emphasis; dunder names and star-arguments become
  # code spans.
  defp escape_text(text) do
    text
    |> String.replace(~r/<(?=[A-Za-z\/!?])/, "\\\\<")
    |> String.replace(~r/(?<![\w`])[\w.]*__\w+__(?:\(\))?[\w.]*/, &"`#{&1}`")
    |> String.replace(~r/(?<![\w*`])(\*{1,2})([A-Za-z_]\w*)(?![\w*])/, fn whole ->
      stars = String.length(whole) - String.length(String.trim_leading(whole, "*"))
      if stars == 2 or not Regex.match?(~r/\w\*(?!\w)/, text), do: "`#{whole}`", else: whole
    end)
  end

  # A line that Markdown would read as a heading or a quote.
  defp escape_line(line) do
    if line =~ ~r/^(#|>)/, do: "\\" <> line, else: line
  end

  # ------------------------------------------------------------------ lines

  defp fence(lines, lang), do: "```#{lang}\n" <> Enum.join(lines, "\n") <> "\n```"

  defp doctest?(line), do: String.starts_with?(String.trim_leading(line), ">>>")

  # A numpydoc/reStructuredText section title: a short line over its underline.
  defp section_title?([line, next | _]) do
    underline = ~r/^([-=~^"'`#*+])\1{2,}$/

    indent(line) == 0 and not blank?(line) and byte_size(line) <= 80 and not Regex.match?(underline, line) and
      Regex.match?(underline, next)
  end

  defp section_title?(_), do: false

  defp google_header?([line, next | _]) do
    title = String.trim_trailing(line, ":")
    String.ends_with?(line, ":") and title in @google_titles and not blank?(next) and indent(next) > 0
  end

  defp google_header?(_), do: false

  defp table?(line), do: Regex.match?(~r/^(=+( +=+)*|\+(-+\+)+|\+(=+\+)+)$/, line)

  # Lines are trimmed on the right (to_markdown/1), so a blank one is empty.
  defp blank?(line), do: line == ""

  defp indent(line), do: byte_size(line) - byte_size(String.trim_leading(line, " "))

  defp drop_blank(lines), do: Enum.drop_while(lines, &blank?/1)

  # The lines of an indented block (blank lines inside it included).
  defp take_indented(lines) do
    {block, rest} = Enum.split_while(lines, &(blank?(&1) or indent(&1) > 0))
    {trailing, block} = block |> Enum.reverse() |> Enum.split_while(&blank?/1)
    {Enum.reverse(block), Enum.reverse(trailing) ++ rest}
  end

  defp dedent(lines) do
    case lines |> Enum.reject(&blank?/1) |> Enum.map(&indent/1) do
      [] -> Enum.map(lines, fn _ -> "" end)
      indents -> (fn n -> Enum.map(lines, &drop_columns(&1, n)) end).(Enum.min(indents))
    end
  end

  # Leading spaces are single bytes.
  defp drop_columns(line, n) when byte_size(line) <= n, do: ""
  defp drop_columns(line, n), do: binary_part(line, n, byte_size(line) - n)
end
