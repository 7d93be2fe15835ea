"""ELF64 files as Meridian's images need them: what the dynamic loader needs to start one,
whether a root filesystem provides it, and the file without what the loader never reads.

Standard library only: layers.py runs this inside image builds, on the base image's
interpreter.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ELF64_LE = b"\x7fELF\x02\x01"
SECTION = struct.Struct("<IIQQQQIIQQ")  # Elf64_Shdr
SEGMENT = struct.Struct("<IIQQQQQQ")  # Elf64_Phdr
DYNAMIC_ENTRY = struct.Struct("<qQ")  # Elf64_Dyn
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NEEDED, DT_STRTAB = 1, 5
SHT_NULL, SHT_NOBITS = 0, 8
SHF_ALLOC = 0x2
# The kernel's limit (ELOOP) on symbolic links followed while resolving one path.
MAX_SYMLINK_HOPS = 40


@dataclass(frozen=True)
class ElfLinks:
    """What the dynamic loader needs to start an ELF file."""

    interpreter: str | None
    needed: tuple[str, ...]


def is_elf64(head: bytes) -> bool:
    """Whether a file starting with `head` is a little-endian ELF64 file."""
    return head.startswith(ELF64_LE)


def elf_links(data: bytes) -> ElfLinks:
    """PT_INTERP and DT_NEEDED of a little-endian ELF64 file."""
    if not is_elf64(data):
        raise ValueError("not a little-endian ELF64 file")
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    interpreter: str | None = None
    loads: list[tuple[int, int, int]] = []
    dynamic = b""
    for index in range(phnum):
        kind, _flags, offset, vaddr, _paddr, filesz, _memsz, _align = SEGMENT.unpack_from(
            data, phoff + index * phentsize
        )
        if kind == PT_INTERP:
            interpreter = data[offset : offset + filesz].rstrip(b"\0").decode()
        elif kind == PT_LOAD:
            loads.append((vaddr, offset, filesz))
        elif kind == PT_DYNAMIC:
            dynamic = data[offset : offset + filesz]
    entries = list(DYNAMIC_ENTRY.iter_unpack(dynamic))
    strtab = next((value for tag, value in entries if tag == DT_STRTAB), None)
    if strtab is None:
        return ElfLinks(interpreter, ())
    # DT_STRTAB is a virtual address: map it to a file offset through its PT_LOAD segment.
    base = next(off + strtab - va for va, off, size in loads if va <= strtab < va + size)
    needed = [
        data[base + value : data.index(b"\0", base + value)].decode()
        for tag, value in entries
        if tag == DT_NEEDED
    ]
    return ElfLinks(interpreter, tuple(needed))


def resolve_in_root(root: Path, path: str) -> Path | None:
    """Follow `path` as the kernel would inside a chroot at `root`; None if dangling."""
    current = PurePosixPath("/")
    pending = list(PurePosixPath(path).parts[1:])
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            current = current.parent
            continue
        host = root.joinpath(*(current / part).parts[1:])
        if host.is_symlink():
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                return None
            target = PurePosixPath(os.readlink(host))
            if target.is_absolute():
                current, target = PurePosixPath("/"), target.relative_to("/")
            pending = [*target.parts, *pending]
        elif host.exists():
            current /= part
        else:
            return None
    return root.joinpath(*current.parts[1:])


def unresolved_links(root: Path, data: bytes, library_dir: str) -> Iterator[str]:
    """What an ELF file under `root` needs that `root` does not provide, where the
    loader looks for it: the interpreter at its path, libraries in `library_dir`."""
    links = elf_links(data)
    if links.interpreter and resolve_in_root(root, links.interpreter) is None:
        yield f"program interpreter {links.interpreter} is missing"
    for library in links.needed:
        if resolve_in_root(root, f"/{library_dir}/{library}") is None:
            yield f"needs {library}, which is not in the root filesystem"


def strip_elf(data: bytes) -> bytes | None:
    """The file without its unloaded sections (as `strip` does), or None to keep it as is.

    Wheels on PyPI often ship extension modules with full DWARF debug info. The dynamic
    loader reads only the program headers and the segments they map. Linkers put every
    loaded section first and the rest (comments, debug info, static symbol table) after
    them, after the last mapped byte: those are dropped, except the section-name table,
    which moves up to follow the mapped bytes, and the section header table is written
    after it. The loaded sections keep their indices, so no reference to them changes.
    A file laid out any other way is left alone.
    """
    if not is_elf64(data):
        return None
    phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
    phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", data, 0x36)
    if shoff == 0 or shnum == 0 or shentsize != SECTION.size or phentsize != SEGMENT.size:
        return None
    mapped_end = phoff + phnum * phentsize
    for index in range(phnum):
        segment = SEGMENT.unpack_from(data, phoff + index * phentsize)
        mapped_end = max(mapped_end, segment[2] + segment[5])  # p_offset + p_filesz
    sections = [list(SECTION.unpack_from(data, shoff + i * shentsize)) for i in range(shnum)]
    loaded = [i for i, header in enumerate(sections) if header[2] & SHF_ALLOC]
    if not loaded:
        return None
    last_loaded = max(loaded)
    kept = sections[: last_loaded + 1]
    tail = range(last_loaded + 1, shnum)
    names = sections[shstrndx]
    if (
        shstrndx not in tail
        or len(tail) < 2  # nothing but the section names to drop
        or any(not header[2] & SHF_ALLOC and header[1] != SHT_NULL for header in kept[1:])
        or any(header[6] > last_loaded for header in kept)  # sh_link into the tail
        or any(sections[i][4] < mapped_end and sections[i][1] != SHT_NOBITS for i in tail)
    ):
        return None
    out = bytearray(data[:mapped_end])
    out.extend(b"\0" * (-len(out) % max(names[8], 1)))
    offset, size = names[4], names[5]
    names[4] = len(out)
    out.extend(data[offset : offset + size])
    out.extend(b"\0" * (-len(out) % 8))
    struct.pack_into("<Q", out, 0x28, len(out))  # e_shoff
    struct.pack_into("<HH", out, 0x3C, len(kept) + 1, len(kept))  # e_shnum, e_shstrndx
    for header in [*kept, names]:
        out.extend(SECTION.pack(*header))
    return bytes(out)
