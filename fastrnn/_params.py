"""One live parameter dict over the parameters of several parts (layers, directions, a head)."""

from collections.abc import MutableMapping


class PrefixedParams(MutableMapping):
    """The parameters of ``parts`` under the keys ``"{prefix}.{name}"``.

    Nothing is copied: a key resolves to the part's own ``params`` dict at every access, so an
    in-place update (``params["0.weight_hh"][...] = w``) and an assignment
    (``params["0.weight_hh"] = w``, checked by the part at its next call) both reach the part,
    and a part whose dict changed is seen at once.
    """

    def __init__(self, parts):
        self._parts = dict(parts)  # prefix -> object with a ``params`` mapping

    def _locate(self, key):
        prefix, dot, name = key.partition(".") if isinstance(key, str) else ("", "", "")
        part = self._parts.get(prefix)
        if not dot or part is None or name not in part.params:
            raise KeyError(key)
        return part.params, name

    def __getitem__(self, key):
        params, name = self._locate(key)
        return params[name]

    def __setitem__(self, key, value):
        params, name = self._locate(key)
        params[name] = value

    def __delitem__(self, key):
        self._locate(key)
        raise TypeError(f"params: {key!r} belongs to the model's layout and cannot be removed")

    def __iter__(self):
        for prefix, part in self._parts.items():
            for name in part.params:
                yield f"{prefix}.{name}"

    def __len__(self):
        return sum(len(part.params) for part in self._parts.values())

    def __repr__(self):
        return "{" + ", ".join(f"{key!r}: <{self[key].dtype.name} {self[key].shape}>" for key in self) + "}"


class Parameters(dict):
    """A cell's ``params``: a plain dict that also counts the changes made to it.

    ``version`` goes up with every assignment, deletion or update, so a cell tells in one
    comparison that none of its arrays has been replaced since it last checked them (a lookup of
    each by name cost 0.4 µs of a 5 µs call at T=8, B=1, H=16). The arrays themselves stay the
    user's to change in place.
    """

    # A class attribute, so that the first change creates the instance's own: unpickling and
    # copying fill the items before they restore the instance's attributes.
    version = 0

    def _changed(self):
        self.version += 1

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key):
        super().__delitem__(key)
        self._changed()

    def __ior__(self, other):
        super().__ior__(other)
        self._changed()
        return self

    def clear(self):
        super().clear()
        self._changed()

    def pop(self, *args):
        value = super().pop(*args)
        self._changed()
        return value

    def popitem(self):
        item = super().popitem()
        self._changed()
        return item

    def setdefault(self, key, default=None):
        value = super().setdefault(key, default)
        self._changed()
        return value

    def update(self, *args, **kwargs):
        super().update(*args, **kwargs)
        self._changed()
