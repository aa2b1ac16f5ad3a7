"""Plans how `down` undoes what the node made, from what the machine reports (pure functions)."""

import os
import shlex
from pathlib import Path


def iptables_cleanup(save_output: str, prefix: str = "KUBE-") -> list[list[str]]:
    """iptables arguments that remove the chains named `prefix`* and the rules elsewhere that jump to them.

    `save_output` is `iptables-save`'s; the rules go first, then the chains are flushed, then deleted
    (a chain can be deleted only when no rule refers to it).
    """
    rules: list[list[str]] = []
    chains: list[tuple[str, str]] = []
    table = ""
    for line in save_output.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":"):
            chain = line[1:].split()[0]
            if chain.startswith(prefix):
                chains.append((table, chain))
        elif line.startswith("-A "):
            words = shlex.split(line)
            chain = words[1]
            target = words[words.index("-j") + 1] if "-j" in words else ""
            if not chain.startswith(prefix) and target.startswith(prefix):
                rules.append(["-t", table, "-D", *words[1:]])
    flushes = [["-t", table, "-F", chain] for table, chain in chains]
    deletes = [["-t", table, "-X", chain] for table, chain in chains]
    return rules + flushes + deletes


def empty_tables(save_output: str) -> list[str]:
    """The tables in `iptables-save`'s output that hold no rule and no chain but the built-in ones.

    iptables (nft backend) makes a table the first time anyone uses it, and leaves it when emptied.
    """
    empty, table, has_content = [], "", False
    for line in save_output.splitlines():
        if line.startswith("*"):
            table, has_content = line[1:].strip(), False
        elif line.startswith(":"):
            policy = line[1:].split()[1]
            has_content |= policy == "-"  # a chain someone made; built-in ones have a policy
        elif line.startswith("-A "):
            has_content = True
        elif line.strip() == "COMMIT" and table and not has_content:
            empty.append(table)
    return empty


def mounts_under(mountinfo: str, root: Path) -> list[str]:
    """Mount points at or under `root` in /proc/self/mountinfo's text, deepest first (the order to unmount)."""
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = _unescape(fields[4])
        if point == str(root) or point.startswith(f"{root}/"):
            found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def _unescape(text: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes (\040 ...).
    return text.encode().decode("unicode_escape")


def cgroup_dirs(cgroup_root: Path, name: str = "kubepods") -> list[Path]:
    """Every cgroup named `name` (and those below it) in each hierarchy under cgroup_root, deepest first."""
    found = []
    for hierarchy in sorted(cgroup_root.iterdir()) if cgroup_root.is_dir() else []:
        top = hierarchy / name
        if not top.is_dir():
            continue
        for parent, _dirs, _files in os.walk(top, topdown=False):
            found.append(Path(parent))
    return found


def sysctls_to_restore(before: dict[str, str], now: dict[str, str]) -> dict[str, str]:
    """The kernel settings that differ from what they were before `up`, with the value to put back."""
    return {key: value for key, value in before.items() if now.get(key) not in (None, value)}
