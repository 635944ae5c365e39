/*
 * Rules of tests/e2e/check-yara-equiv: sluiced's verdict on a download must
 * equal `yara rules.yar FILE` on the whole file, rule for rule.
 *
 * Most of them give a different answer on a piece of a file (a prefix, one
 * packet, 1 MiB of it) than on the whole: filesize, `at`, `in`, counts,
 * offsets of the n-th hit, `not`, `for all of`, uint16(0)/uint32(0), and
 * the modules, which read headers at offset 0 and sums over the whole file.
 * make_files.py writes files that match them and files that match them in
 * a piece only. The last three ask only that a string occurs, yet a piece
 * can match where the file does not: YARA's regex anchors ^ and $ are the
 * start and end of the data scanned, and fullword takes them for word
 * boundaries.
 */
import "pe"
import "elf"
import "math"

rule plain_marker
{
    strings:
        $a = "SLQ-PLAIN-7f3a"
    condition:
        $a
}

/* A webshell line counts in small files only: the same line in a large file
 * is not this rule's business. */
rule small_webshell
{
    strings:
        $w = "<?php @eval($_POST['slq']); ?>"
    condition:
        filesize < 1MB and $w
}

rule big_file_marker
{
    strings:
        $m = "SLQ-BIGMARK"
    condition:
        filesize > 10MB and $m
}

rule header_at_zero
{
    strings:
        $h = "SLQHDR"
    condition:
        $h at 0
}

rule trailer_at_end
{
    strings:
        $t = "SLQTRAILER!"
    condition:
        $t at filesize - 11
}

rule tail_zone
{
    strings:
        $r = "SLQ-TAILZONE"
    condition:
        $r in (filesize - 4096 .. filesize)
}

rule early_tag
{
    strings:
        $s1 = "SLQ-TAG-A"
        $s2 = "SLQ-TAG-B"
        $s3 = "SLQ-TAG-C"
    condition:
        for any of ($s*) : ($ in (0 .. 4096))
}

rule all_tags
{
    strings:
        $t1 = "SLQ-ALL-1"
        $t2 = "SLQ-ALL-2"
        $t3 = "SLQ-ALL-3"
    condition:
        for all of ($t*) : ($)
}

rule count_many
{
    strings:
        $c = "SLQ-CNT"
    condition:
        #c > 3
}

rule count_exactly_one
{
    strings:
        $o = "SLQ-ONE"
    condition:
        #o == 1
}

rule x_not_y
{
    strings:
        $x = "SLQ-XGOOD"
        $y = "SLQ-YSIGNED"
    condition:
        $x and not $y
}

rule pair_far
{
    strings:
        $p = "SLQ-PAIR"
    condition:
        #p >= 2 and @p[2] - @p[1] > 1MB
}

rule mz_magic
{
    condition:
        uint16(0) == 0x5A4D
}

rule pe_two_sections
{
    condition:
        pe.is_pe and pe.number_of_sections == 2
}

rule pe_dll_amd64
{
    condition:
        pe.is_pe and pe.machine == pe.MACHINE_AMD64 and pe.characteristics & pe.DLL
}

rule pe_i386
{
    condition:
        pe.is_pe and pe.machine == pe.MACHINE_I386 and pe.number_of_sections >= 4
}

rule elf_big
{
    condition:
        uint32(0) == 0x464C457F and filesize > 5MB
}

rule elf_static_exec
{
    condition:
        elf.type == elf.ET_EXEC
}

rule elf_many_sections
{
    condition:
        elf.type == elf.ET_DYN and elf.number_of_sections >= 30
}

rule random_blob
{
    condition:
        filesize < 3MB and math.entropy(0, filesize) > 7.5
}

rule anchored_regex
{
    strings:
        $r = /^SLQRE-A/
    condition:
        $r
}

rule end_regex
{
    strings:
        $r = /SLQRE-Z$/
    condition:
        $r
}

rule full_word
{
    strings:
        $f = "SLQWORD" fullword
    condition:
        $f
}
