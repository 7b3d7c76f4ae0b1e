/* plugins/qemu/record_protocol.h — what the contpte QEMU plugin sends to
 * `contpte record` (src/trace/record_qemu.cpp) over a Unix stream socket.
 * Shared by the C plugin and the C++ reader; docs/trace.md describes it.
 *
 * Each connection is one guest process (one qemu-user process): a HELLO
 * message, then CHUNK and DEFS messages until the connection closes. A
 * message is one 64-bit little-endian header word, (kind << 56) | payload
 * bytes, then the payload. DEFS payloads are 64-bit words, and so is a
 * HELLO's but for the command line that ends it; a
 * CHUNK is two words (tid, time) then events as bytes, each a tag byte
 * (kind in bits 0-2, log2(size) of a load or store in bits 3-6) and
 * LEB128 varints. Deltas are zigzag-coded and start from 0 in every chunk,
 * and so does the block-run prediction, so each chunk decodes on its own.
 *
 * Block-run prediction (protocol 3): within a chunk, the block that ran
 * after block F last time is F's prediction, kept in slot
 * F % CPT_PRED_SLOTS (a slot holds one F: a later F' in the same slot
 * replaces it). A run of the predicted block is no EXEC event: bit 7 of
 * the next load's or store's tag says it ran just before that access, or,
 * when another event comes first, a CPT_EV_NEXT byte. Every run, predicted
 * or not, updates F's slot and the EXEC delta base.
 */
#ifndef CONTPTE_RECORD_PROTOCOL_H
#define CONTPTE_RECORD_PROTOCOL_H

#include <stdint.h>

enum {
  CPT_REC_PROTOCOL = 3,
  CPT_PRED_SLOTS = 4096, /* block-run prediction slots (a power of 2) */
  /* Message kinds (header word >> 56). */
  CPT_MSG_HELLO = 1, /* protocol, pid, ppid, isa (CPT_ISA_*), CLOCK_MONOTONIC ns,
                        then the guest command line as qemu was given it (the
                        arguments after `-plugin SPEC`, each NUL-terminated) */
  CPT_MSG_CHUNK = 2, /* tid, CLOCK_MONOTONIC ns when sent, then events */
  CPT_MSG_DEFS = 3,  /* translation-block definitions (CPT_EV_DEF events) */
  /* The guest's instruction set. */
  CPT_ISA_X86_64 = 1,
  CPT_ISA_AARCH64 = 2,
  /* Chunk events (tag byte bits 0-2). */
  CPT_EV_LOAD = 0,    /* zigzag(address - previous load/store address) */
  CPT_EV_STORE = 1,   /* as LOAD */
  CPT_EV_EXEC = 2,    /* zigzag(block index - previous executed index): it starts */
  CPT_EV_SYSCALL = 3, /* CPT_SYS_* code, then its 6 arguments */
  CPT_EV_SYSRET = 4,  /* CPT_SYS_* code, then zigzag(result) */
  CPT_EV_FILE = 5,    /* file size, path length, the path's bytes: the file the
                         next mmap maps */
  /* DEFS payload: per block, the word (CPT_EV_DEF << 60) | index, its start
   * address, its instruction count n, then ceil(n / 8) words of instruction
   * sizes (one byte each, low byte first). */
  CPT_EV_DEF = 6,
  CPT_EV_NEXT = 7,    /* the predicted block ran (no payload) */
  CPT_MEM_AFTER_NEXT = 0x80, /* load/store tag bit: the predicted block ran first */
  /* The system calls sent, whatever the ISA's numbers. */
  CPT_SYS_MMAP = 1,
  CPT_SYS_MUNMAP = 2,
  CPT_SYS_MPROTECT = 3,
  CPT_SYS_MADVISE = 4,
  CPT_SYS_BRK = 5,
  CPT_SYS_MREMAP = 6,
  CPT_SYS_CLONE = 7, /* arguments as the ISA passes them: flags first */
  CPT_SYS_CLONE3 = 8,
  CPT_SYS_FORK = 9,
  CPT_SYS_VFORK = 10,
  CPT_SYS_EXECVE = 11,
  CPT_SYS_EXECVEAT = 12,
  CPT_SYS_EXIT = 13,
  CPT_SYS_EXIT_GROUP = 14,
};

#endif
