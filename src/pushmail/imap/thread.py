"""THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §4), sans-IO, over the
precomputed keys of ``imap/sort.Item``. The steps of REFERENCES are numbered as in
the RFC.

Containers are indices into parallel lists (item, parent, children), not objects
pointing at each other: no reference cycles for the garbage collector to chase in
a server with a large heap, and a copy of the links is two list copies. Trees are
walked with explicit stacks: References chains are the sender's to choose, and a
deep one must not exhaust the interpreter's stack.

Step 1 depends only on the messages taken so far, in sequence order, so a
``Linker`` can be kept and given only the messages that arrived since (``extend``);
steps 2-7 then run on a copy of its links.
"""

from __future__ import annotations

from collections.abc import Sequence

from pushmail.imap.sort import Item

_NONE = -1


class Linker:
    """Step 1 of REFERENCES: the containers of every Message-ID seen, linked."""

    __slots__ = ("children", "ids", "items", "labels", "numbers", "order", "parent")

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.items: list[Item | None] = []  # None: a dummy (an id only referred to)
        self.parent: list[int] = []
        self.children: list[list[int]] = []
        self.numbers: list[int] = []  # the messages taken, in order (their ``number``)
        # Per container, computed once: the sort key (sent date, sequence number)
        # and the number as written, by sequence number and by UID.
        self.order: list[tuple[float, int]] = []
        self.labels: tuple[list[str], list[str]] = ([], [])

    def _container(self, mid: str) -> int:
        node = self.ids.get(mid)
        if node is None:
            node = self.ids[mid] = len(self.items)
            self.items.append(None)
            self.parent.append(_NONE)
            self.children.append([])
            self.order.append((0.0, 0))
            self.labels[0].append("")
            self.labels[1].append("")
        return node

    def _is_ancestor(self, a: int, b: int) -> bool:
        """Whether ``a`` is ``b`` or one of its ancestors."""
        parent = self.parent
        while b != _NONE:
            if b == a:
                return True
            b = parent[b]
        return False

    def _link(self, parent: int, child: int) -> None:
        self.parent[child] = parent
        self.children[parent].append(child)

    def extend(self, items: Sequence[Item]) -> None:
        """Take ``items`` (in sequence order, after those taken before)."""
        for item in items:
            self.numbers.append(item.number)
            mid = item.keys.message_id
            if mid is None or (mid in self.ids and self.items[self.ids[mid]] is not None):
                mid = f"\0{item.number}"  # missing or duplicate: a unique id (step 1)
            node = self._container(mid)
            self.items[node] = item
            self.order[node] = (item.date, item.seq)
            self.labels[0][node] = str(item.seq)
            self.labels[1][node] = str(item.number)
            prev = _NONE
            for ref in item.keys.references:  # 1.A: link the references in order
                cur = self._container(ref)
                if prev != _NONE and self.parent[cur] == _NONE and not self._is_ancestor(
                    cur, prev
                ):
                    self._link(prev, cur)
                prev = cur
            old = self.parent[node]  # 1.B: the last reference is the parent, replacing
            if old != _NONE:  # any other
                self.children[old].remove(node)
                self.parent[node] = _NONE
            if prev != _NONE and not self._is_ancestor(node, prev):
                self._link(prev, node)


class _Tree:
    """Steps 2-7 on a copy of a ``Linker``'s links."""

    def __init__(self, linker: Linker) -> None:
        self.items = list(linker.items)
        self.parent = list(linker.parent)
        self.children = [list(c) for c in linker.children]
        self.order = list(linker.order)
        self.labels = linker.labels
        self.post: list[int] = []  # every node below the roots, children first (prune)

    def _new_dummy(self) -> int:
        self.items.append(None)
        self.parent.append(_NONE)
        self.children.append([])
        self.order.append((0.0, 0))
        return len(self.items) - 1

    def _link(self, parent: int, child: int) -> None:
        self.parent[child] = parent
        self.children[parent].append(child)

    def _post_order(self, roots: list[int]) -> list[int]:
        """Every node under ``roots``, each after all of its descendants."""
        out: list[int] = []
        stack = list(roots)
        children = self.children
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(children[node])
        out.reverse()
        return out

    def prune(self) -> list[int]:
        """Steps 2-3: the root set, without childless dummies; a dummy's children
        promoted, except a root dummy's when it has more than one. Bottom-up, so a
        promoted child is already pruned."""
        roots = [n for n, p in enumerate(self.parent) if p == _NONE]
        children = self.children
        # Still children before parents after the pruning (a promoted child stays
        # below its new parent), so ``sort`` walks this list again.
        self.post = self._post_order(roots)
        for node in self.post:
            if children[node]:
                children[node] = self._pruned(children[node], False, node)
        return self._pruned(roots, True, _NONE)

    def _pruned(self, nodes: list[int], at_root: bool, parent: int) -> list[int]:
        out: list[int] = []
        items, children = self.items, self.children
        for node in nodes:
            if items[node] is None:
                kids = children[node]
                if not kids:
                    continue
                if not at_root or len(kids) == 1:
                    for child in kids:
                        self.parent[child] = parent
                    out.extend(kids)
                    continue
            out.append(node)
        return out

    def sort(self, roots: list[int]) -> None:
        """Steps 4 and 6: every set of siblings by sent date then sequence number,
        deepest first; a dummy sorts as its first child. After ``prune``."""
        children, order, items = self.children, self.order, self.items
        key = order.__getitem__
        for node in self.post:  # pruned dummies included: childless, or left alone
            kids = children[node]
            if len(kids) > 1:
                kids.sort(key=key)
            if items[node] is None and kids:
                order[node] = order[kids[0]]
        roots.sort(key=key)

    def sort_top(self, roots: list[int], touched: set[int]) -> None:
        """Step 6 after step 5: only the sibling sets step 5 added to (``touched``:
        roots, new dummies, and a root that a new dummy then took under it) and the
        root level changed; everything else is still sorted. Their children are
        messages (no dummy is left below the root), whose keys are fixed."""
        children, order, items = self.children, self.order, self.items
        key = order.__getitem__
        for node in touched:
            kids = children[node]
            if len(kids) > 1:
                kids.sort(key=key)
            if items[node] is None and kids:
                order[node] = order[kids[0]]
        roots.sort(key=key)

    def _subject(self, node: int) -> tuple[str, bool]:
        """A thread's base subject and whether it is a reply: its message's, or its
        first child's for a dummy (step 5.B.i)."""
        item = self.items[node]
        while item is None:
            node = self.children[node][0]
            item = self.items[node]
        return item.keys.subject, item.keys.reply

    def merge_subjects(self, roots: list[int], touched: set[int]) -> list[int]:
        """Step 5: gather the threads under the root that share a base subject;
        every node given children here is added to ``touched``."""
        items = self.items
        table: dict[str, int] = {}
        for node in roots:  # 5.B
            subject, reply = self._subject(node)
            if not subject:
                continue
            held = table.get(subject)
            replaces = held is not None and items[held] is not None and (
                items[node] is None or (self._subject(held)[1] and not reply)
            )
            if held is None or replaces:
                table[subject] = node
        out: list[int] = []
        for node in roots:  # 5.C
            subject, reply = self._subject(node)
            held = table.get(subject) if subject else None
            if held is None or held == node:
                out.append(node)
                continue
            touched.add(held)
            if items[held] is None and items[node] is None:  # (a)
                for child in self.children[node]:
                    self._link(held, child)
                self.children[node] = []
            elif items[held] is None or (reply and not self._subject(held)[1]):  # (b), (c)
                self._link(held, node)
            else:  # (d): a new dummy over both, in the table's place
                # The table holds the first dummy, else the first non-reply, else
                # the first reply of a subject, so ``held`` came earlier: in ``out``.
                dummy = self._new_dummy()
                touched.add(dummy)
                out[out.index(held)] = dummy
                self._link(dummy, held)
                self._link(dummy, node)
                table[subject] = dummy
        return out

    def render(self, roots: list[int], uid: bool) -> bytes:
        """The THREAD response's data: thread-list *(thread-list) (§5). A chain of
        only children is written flat ("1 2 3"), siblings nested ("1 (2)(3)")."""
        items, children = self.items, self.children
        label = self.labels[1 if uid else 0].__getitem__  # dummies added here have none

        out: list[str] = []  # joined and encoded once: cheaper than bytes per number
        stack: list[int | str] = list(reversed(roots))  # a thread-list to write, or text
        while stack:
            top = stack.pop()
            if isinstance(top, str):
                out.append(top)
                continue
            node = top
            parts: list[str] = []
            while items[node] is not None:  # a message, and its chain of only children
                parts.append(label(node))
                if len(children[node]) != 1:
                    break
                node = children[node][0]
            kids = children[node]
            out.append("(" + " ".join(parts) + (" " if parts and kids else ""))
            stack.append(")")
            for child in reversed(kids):  # a leaf is written at once
                if children[child] or items[child] is None:
                    stack.append(child)
                else:
                    stack.append("(" + label(child) + ")")
        return "".join(out).encode("ascii")


def references(linker: Linker, uid: bool) -> bytes:
    """THREAD=REFERENCES over the messages ``linker`` has taken."""
    tree = _Tree(linker)
    roots = tree.prune()
    tree.sort(roots)  # step 4 sorts the root level; 6 sorts all (same order)
    touched: set[int] = set()
    roots = tree.merge_subjects(roots, touched)
    tree.sort_top(roots, touched)
    return tree.render(roots, uid)


def ordered_subject(items: Sequence[Item], uid: bool) -> bytes:
    """ORDEREDSUBJECT (§4): by base subject then sent date; in each group the first
    message is the parent of the others; threads by their first message's date."""
    groups: dict[str, list[Item]] = {}
    for item in sorted(items, key=lambda i: (i.date, i.seq)):
        groups.setdefault(item.keys.subject, []).append(item)
    out: list[bytes] = []
    for members in sorted(groups.values(), key=lambda m: (m[0].date, m[0].seq)):
        numbers = [b"%d" % (i.number if uid else i.seq) for i in members]
        if len(numbers) <= 2:
            out.append(b"(" + b" ".join(numbers) + b")")
        else:
            out.append(b"(" + numbers[0] + b" " + b"".join(b"(%s)" % n for n in numbers[1:])
                       + b")")
    return b"".join(out)
