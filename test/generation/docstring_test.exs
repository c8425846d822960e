defmodule SnakeBridge.Generation.DocstringTest do
  # Python docstrings become Markdown in generated @doc (SnakeBridge.Generator.Docstring,
  # docs/generated_modules.md "Docs and specs"): doctests and literal blocks as
  # code, numpydoc and Google sections as headings with lists, roles as code
  # spans. Real docstrings come from the installed numpy and difflib.
  use ExUnit.Case, async: true

  alias SnakeBridge.Generator.Docstring

  doctest Docstring

  defp python_doc(module, name) do
    SnakeBridge.eval!("__import__('inspect').getdoc(getattr(__import__(m, fromlist=['_']), n))", %{
      "m" => module,
      "n" => name
    })
  end

  # What IEx's `h` prints.
  defp iex(markdown) do
    ExUnit.CaptureIO.capture_io(fn -> IO.ANSI.Docs.print(markdown, "text/markdown", enabled: false, width: 100) end)
  end

  describe "numpy (numpydoc)" do
    test "numpy.array: signature, sections, parameter list, table, directive, doctests" do
      doc = python_doc("numpy", "array")
      md = Docstring.to_markdown(doc)

      # the two-line signature the docstring starts with, as written
      assert String.starts_with?(md, "```\narray(object, dtype=None, *, copy=True, order='K', subok=False, ndmin=0,\n")

      # `Parameters` over its dashes is a heading; `name : type` a list item
      assert md =~ "\n\n## Parameters\n\n* `object` (array_like) - An array, any object exposing the array interface"
      assert md =~ "\n* `order` ({'K', 'A', 'C', 'F'}, optional) - Specify the memory layout"
      refute md =~ "----------"

      # the simple table under `order` is kept as laid out, inside the list item
      assert md =~ "\n  ```\n  ===== ========= ===================================================\n  order  no copy"

      # ``literals`` are code spans, .. versionadded:: an italic line
      assert md =~ "When `copy=False` and a copy is made"
      assert md =~ "*New in version 1.20.0.*"
      refute md =~ ".. versionadded"

      # every doctest is a code block, its lines kept apart
      assert md =~ "## Examples\n\n```python\n>>> np.array([1, 2, 3])\narray([1, 2, 3])\n```"
      assert md =~ "```python\n>>> np.array([[1, 2], [3, 4]])\narray([[1, 2],\n       [3, 4]])\n```"
      assert length(String.split(doc, ">>> ")) == length(String.split(md, ">>> "))

      # and IEx shows it that way: code indented, not a blockquote
      shown = iex(md)
      assert shown =~ "\n## Parameters\n"
      assert shown =~ "\n    >>> np.array([[1, 2], [3, 4]])\n    array([[1, 2],\n           [3, 4]])\n"
      refute shown =~ ~r/^> /m
    end

    test "numpy.where: .. note:: is a labelled paragraph, names in one entry, See Also without descriptions" do
      md = Docstring.to_markdown(python_doc("numpy", "where"))
      assert md =~ "**Note:** When only `condition` is provided"
      assert md =~ "`np.asarray(condition).nonzero()`"
      assert md =~ "\n* `x`, `y` (array_like) - Values from which to choose."
      assert md =~ "## See Also\n\n* `choose`\n* `nonzero` - The function that is called"
      refute md =~ ".. note::"
    end

    test "numpy.dot: roles become code spans, RST bullet lists Markdown ones" do
      md = Docstring.to_markdown(python_doc("numpy", "dot"))
      assert md =~ "but using `matmul` or `a @ b` is preferred."
      refute md =~ ":func:"
      assert md =~ "\n* If both `a` and `b` are 1-D arrays"
    end
  end

  describe "difflib (plain reStructuredText)" do
    test "get_close_matches: the doctest lines are a code block, not a merged paragraph" do
      md = Docstring.to_markdown(python_doc("difflib", "get_close_matches"))

      assert md =~
               ~s(```python\n>>> get_close_matches\("appel", ["ape", "apple", "peach", "puppy"]\)\n['apple', 'ape']\n>>> import keyword as _keyword\n)

      assert iex(md) =~
               ~s(\n    >>> get_close_matches\("appel", ["ape", "apple", "peach", "puppy"]\)\n    ['apple', 'ape']\n)
    end

    test "SequenceMatcher: continuation lines stay in their block; <wink> is text; dunder names are code" do
      md = Docstring.to_markdown(python_doc("difflib", "SequenceMatcher"))

      assert md =~
               "```python\n>>> s = SequenceMatcher(lambda x: x == \" \",\n...                     \"private Thread currentThread;\","

      assert md =~ "\"junk\" \\<wink>"
      assert iex(md) =~ "\"junk\" <wink>"

      differ = Docstring.to_markdown(python_doc("difflib", "Differ"))
      # a table laid out in columns keeps its layout
      assert differ =~ "```\n'- '    line unique to sequence 1\n'+ '    line unique to sequence 2\n"
      assert differ =~ "See `Differ.__init__` for details."
    end
  end

  describe "other layouts" do
    test "Google style sections" do
      md =
        Docstring.to_markdown("""
        Open a file.

        Args:
            path (str): Where it is,
                relative to the root.
            mode: How to open it.

        Returns:
            bool: True if it opened.

        Raises:
            OSError: If it did not.

        Example:
            >>> open_file("a")
            True
        """)

      assert md ==
               """
               Open a file.

               ## Args

               * `path` (str) - Where it is,
                 relative to the root.
               * `mode` - How to open it.

               ## Returns

               * `bool` - True if it opened.

               ## Raises

               * `OSError` - If it did not.

               ## Example

               ```python
               >>> open_file("a")
               True
               ```\
               """
    end

    test "Sphinx fields, literal blocks, admonitions, links, citations, escapes" do
      md =
        Docstring.to_markdown("""
        Add two numbers, see :py:func:`operator.add` and :class:`~decimal.Decimal`.

        Like this::

            add(1, 2)

        .. warning::
           Floats round.

        .. deprecated:: 2.0
           Use `sum`.

        More at `the docs <https://docs.python.org>`_ [1]_.

        .. [1] A reference.

        # not a heading
        f(**kwargs) and *args here.

        :param a: the first
        :type a: int
        :param b: the second
        :returns: the sum
        :rtype: int
        :raises TypeError: for strings
        """)

      assert md =~ "see `operator.add` and `Decimal`."
      assert md =~ "Like this:\n\n```\nadd(1, 2)\n```"
      assert md =~ "**Warning:** Floats round."
      assert md =~ "*Deprecated since version 2.0.* Use `sum`."
      assert md =~ "More at [the docs](https://docs.python.org)"
      assert md =~ "\\[1] A reference."
      assert md =~ "\\# not a heading\nf(`**kwargs`) and `*args` here."
      assert md =~ "## Parameters\n\n* `a` (int) - the first\n* `b` - the second"
      assert md =~ "## Returns\n\n* (int) - the sum"
      assert md =~ "## Raises\n\n* `TypeError` - for strings"
    end

    test "Argument Clinic's parameter blocks (zlib): a name over its description is a list entry" do
      md = Docstring.to_markdown(python_doc("zlib", "compress"))
      assert md =~ "Returns a bytes object containing compressed data.\n\n* `data` - Binary data to be compressed."
      assert md =~ "\n* `wbits` - The window buffer size and container format."
      # A term that is not a name stays text.
      assert Docstring.to_markdown("Intro.\n\nSome term\n    Its definition.") =~ "* Some term Its definition."
    end

    test "the same docstring always gives the same Markdown; plain text is unchanged" do
      doc = python_doc("numpy", "add")
      assert Docstring.to_markdown(doc) == Docstring.to_markdown(doc)
      assert Docstring.to_markdown("Just a sentence.\nOn two lines.") == "Just a sentence.\nOn two lines."
      assert Docstring.to_markdown("") == ""
    end
  end
end
