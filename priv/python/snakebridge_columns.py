"""A pandas DataFrame as columns, for SnakeBridge.to_columns (driven by
c_src/core/arrays.cpp, documented in docs/arrays.md).

``columns(frame, index)`` returns ``[(name, is_array, values), ...]`` in the
frame's column order: numeric columns (bool, integers, floats, complex) as
their numpy array (which the core hands to Elixir as a SnakeBridge.Array,
without a copy where the column is contiguous); every other column as a list
of plain Python values: datetimes as ``datetime.datetime`` (naive, or aware
for a zoned column; nanoseconds cut to microseconds), missing values
(``None``, ``NaN`` of an object column, ``NaT``, ``pd.NA``) as ``None``.
"""

import datetime
import warnings

_NUMERIC_KINDS = "biufc"


def columns(frame, index):
    import numpy
    import pandas

    if not isinstance(frame, pandas.DataFrame):
        kind = type(frame)
        raise TypeError(
            f"to_columns needs a pandas.DataFrame, got a {kind.__module__}.{kind.__qualname__}"
        )
    if index:
        frame = frame.reset_index()
    names = list(frame.columns)
    if len(set(names)) != len(names):
        raise ValueError(f"to_columns: the frame has duplicate column names: {names!r}")
    out = []
    for position, name in enumerate(names):
        column = frame.iloc[:, position]
        dtype = column.dtype
        if isinstance(dtype, numpy.dtype) and dtype.kind in _NUMERIC_KINDS and dtype.itemsize <= 16:
            out.append((name, True, column.to_numpy()))
        elif isinstance(dtype, numpy.dtype) and dtype.kind == "M" or isinstance(dtype, pandas.DatetimeTZDtype):
            out.append((name, False, _datetimes(column)))
        else:
            values = column.astype(object)
            out.append((name, False, values.where(column.notna(), None).tolist()))
    return out


def _datetimes(column):
    with warnings.catch_warnings():
        # Nanoseconds have no place in a datetime: cut, as documented.
        warnings.simplefilter("ignore")
        values = column.dt.to_pydatetime()
    missing = column.isna().to_numpy()
    return [None if gone else _plain(value) for value, gone in zip(values, missing)]


def _plain(value):
    # pandas.Timestamp subclasses datetime; the walker converts exact types only.
    if type(value) is not datetime.datetime:
        value = datetime.datetime(
            value.year, value.month, value.day, value.hour, value.minute, value.second,
            value.microsecond, value.tzinfo,
        )
    return value
