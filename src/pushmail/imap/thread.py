"""THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §4), sans-IO, over the
precomputed keys of ``imap/sort.Item``. The steps of REFERENCES are numbered as in
the RFC. Trees are walked with explicit stacks: References chains are the sender's
to choose, and a deep one must not exhaust the interpreter's stack.
"""

from __future__ import annotations

from collections.abc import Sequence

from pushmail.imap.sort import Item


class _Node:
    __slots__ = ("children", "item", "parent")

    def __init__(self, item: Item | None = None) -> None:
        self.item = item  # None: a dummy (a message only referred to)
        self.parent: _Node | None = None
        self.children: list[_Node] = []


def _order(node: _Node) -> tuple[float, int]:
    """Sent date, then sequence number (§2.2); a dummy sorts as its first child."""
    while node.item is None:
        node = node.children[0]
    return node.item.date, node.item.seq


def _is_ancestor(a: _Node, b: _Node) -> bool:
    """Whether ``a`` is ``b`` or one of its ancestors."""
    node: _Node | None = b
    while node is not None:
        if node is a:
            return True
        node = node.parent
    return False


def _link(parent: _Node, child: _Node) -> None:
    child.parent = parent
    parent.children.append(child)


def _unlink(child: _Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
        child.parent = None


def _build(items: Sequence[Item]) -> list[_Node]:
    """Steps 1 and 2: the containers linked by References, and the root set."""
    table: dict[str, _Node] = {}
    order: list[_Node] = []  # creation order, for a deterministic root set

    def container(mid: str) -> _Node:
        node = table.get(mid)
        if node is None:
            node = table[mid] = _Node()
            order.append(node)
        return node

    for item in sorted(items, key=lambda i: i.seq):
        mid = item.keys.message_id
        if mid is None or (mid in table and table[mid].item is not None):
            mid = f"\0{item.seq}"  # missing or duplicate: a unique id (step 1)
        node = container(mid)
        node.item = item
        prev: _Node | None = None
        for ref in item.keys.references:  # 1.A: link the references in order
            cur = container(ref)
            if prev is not None and cur.parent is None and not _is_ancestor(cur, prev):
                _link(prev, cur)
            prev = cur
        _unlink(node)  # 1.B: the last reference is the parent, replacing any other
        if prev is not None and not _is_ancestor(node, prev):
            _link(prev, node)
    return [n for n in order if n.parent is None]


def _prune(roots: list[_Node]) -> list[_Node]:
    """Step 3: drop childless dummies; promote a dummy's children, except a root
    dummy's when it has more than one. Bottom-up, so a promoted child is already
    pruned."""
    post: list[tuple[_Node, bool]] = []
    stack = [(n, True) for n in roots]
    while stack:
        node, at_root = stack.pop()
        post.append((node, at_root))
        stack.extend((c, False) for c in node.children)
    for node, _ in reversed(post):
        node.children = _pruned(node.children, at_root=False, parent=node)
    return _pruned(roots, at_root=True, parent=None)


def _pruned(nodes: list[_Node], at_root: bool, parent: _Node | None) -> list[_Node]:
    out: list[_Node] = []
    for node in nodes:
        if node.item is None:
            if not node.children:
                continue
            if not at_root or len(node.children) == 1:
                for child in node.children:
                    child.parent = parent
                out.extend(node.children)
                continue
        out.append(node)
    return out


def _sort_tree(roots: list[_Node]) -> None:
    """Sort every set of siblings, deepest first (so a dummy's first child is
    known when its parent's siblings are sorted)."""
    post: list[_Node] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        post.append(node)
        stack.extend(node.children)
    for node in reversed(post):
        node.children.sort(key=_order)
    roots.sort(key=_order)


def _subject(node: _Node) -> tuple[str, bool]:
    """A thread's base subject and whether it is a reply: its message's, or its
    first child's for a dummy (step 5.B.i)."""
    while node.item is None:
        node = node.children[0]
    return node.item.keys.subject, node.item.keys.reply


def _merge_subjects(roots: list[_Node]) -> list[_Node]:
    """Step 5: gather the threads under the root that share a base subject."""
    table: dict[str, _Node] = {}
    for node in roots:  # 5.B
        subject, reply = _subject(node)
        if not subject:
            continue
        held = table.get(subject)
        replaces = held is not None and held.item is not None and (
            node.item is None or (_subject(held)[1] and not reply)
        )
        if held is None or replaces:
            table[subject] = node
    out: list[_Node] = []
    for node in roots:  # 5.C
        subject, reply = _subject(node)
        held = table.get(subject) if subject else None
        if held is None or held is node:
            out.append(node)
            continue
        if held.item is None and node.item is None:  # (a)
            for child in node.children:
                _link(held, child)
        elif held.item is None or (reply and not _subject(held)[1]):  # (b), (c)
            _link(held, node)
        else:  # (d): a new dummy over both, in the table's place
            # The table holds the first dummy, else the first non-reply, else the
            # first reply of a subject, so here ``held`` came earlier: it is in ``out``.
            dummy = _Node()
            out[out.index(held)] = dummy
            for n in (held, node):
                _link(dummy, n)
            table[subject] = dummy
    return [n for n in out if n.parent is None]


def references(items: Sequence[Item]) -> list[_Node]:
    roots = _prune(_build(items))
    _sort_tree(roots)  # step 4 sorts the root level; 6 sorts all (same order)
    roots = _merge_subjects(roots)
    _sort_tree(roots)
    return roots


def ordered_subject(items: Sequence[Item]) -> list[_Node]:
    """ORDEREDSUBJECT (§4): by base subject then sent date; in each group the first
    message is the parent of the others; threads by their first message's date."""
    groups: dict[str, list[Item]] = {}
    for item in sorted(items, key=lambda i: (i.date, i.seq)):
        groups.setdefault(item.keys.subject, []).append(item)
    roots: list[_Node] = []
    for members in groups.values():
        root = _Node(members[0])
        for item in members[1:]:
            _link(root, _Node(item))
        roots.append(root)
    roots.sort(key=_order)
    return roots


def render(roots: list[_Node]) -> bytes:
    """The THREAD response's data: thread-list *(thread-list) (§5). A chain of
    only children is written flat ("1 2 3"), siblings nested ("1 (2)(3)")."""
    out: list[bytes] = []
    # Items of the stack: a node to write, or bytes to emit after a subtree.
    stack: list[_Node | bytes] = []
    for root in reversed(roots):
        stack += [b")", root, b"("]
    while stack:
        top = stack.pop()
        if isinstance(top, bytes):
            out.append(top)
            continue
        node: _Node = top
        while True:
            if node.item is not None:
                if out and out[-1] not in (b"(",):
                    out.append(b" ")
                out.append(b"%d" % node.item.number)
            if len(node.children) == 1 and node.item is not None:
                node = node.children[0]
                continue
            if node.children:
                if node.item is not None:
                    out.append(b" ")
                for child in reversed(node.children):
                    stack += [b")", child, b"("]
            break
    return b"".join(out)
