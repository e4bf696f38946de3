# shellcheck shell=bash
#
# Shared functions of the ibmvirt DPM guest tools. Sourced by
# ibmvirt-dpm-netconfig and ibmvirt-dpm-setmac; never executed on its own.
#
# The ibmvirt DPM compute driver (ibmvirt/dpm/bootparams.py) describes the
# partition's NICs in the partition property boot-os-specific-parameters,
# which the firmware appends to the kernel command line. One record per NIC:
#
#     <devno>,<port>[,<mac>];
#
#   devno  4 hex digits, the first of the 3 device numbers of the qeth device
#          (bus-ID 0.0.<devno>; DPM uses subchannel set 0 only)
#   port   0 or 1, the OSA adapter port
#   mac    12 hex digits without separators, a locally administered unicast
#          address; present only on CPCs that cannot set the MAC at NIC creation
#
# How the command line is read (the contract with the driver):
#   * /proc/cmdline is split into whitespace-separated tokens; nothing in it is
#     ever expanded, globbed or evaluated: tokens are matched as plain strings.
#   * A token holds NIC records if it contains a ';', or if it contains a ','
#     and no '='. Other tokens (root=..., console=ttysclp0,..., quiet) are
#     kernel parameters and are ignored.
#   * A record token may hold several adjacent records ("0001,1;0004,0;"), as
#     the HMC documentation shows; the driver writes one record per token.
#   * Hex digits are accepted in either case and used in lower case.
#   * Every record is validated; a malformed one is skipped with a log line
#     naming it (non-printable characters shown as '?', long ones shortened).
#   * If a device number appears twice, the first record wins; the second is
#     logged and ignored.
#
# Environment:
#   IBMVIRT_DPM_ROOT  prefix for every file and command the tools use (tests
#                     run the tools in a fake root). Empty in production.
#   JOURNAL_STREAM    set by systemd when stderr goes to the journal; then
#                     log lines are not sent to logger a second time.

# No `set -u`: bash before 4.4 (SLES 12) treats an empty array as unset.
# Byte-wise character classes and messages.
export LC_ALL=C

# At most this many malformed records are listed; the rest are counted.
readonly DPM_MAX_LISTED_MALFORMED=32

DPM_TAG=ibmvirt-dpm
DPM_ROOT=""
# A file that log lines are also appended to (the console), if set.
DPM_CONSOLE=""

# The valid records, in command-line order: DPM_DEVNOS[i], DPM_PORTS[i] and
# DPM_MACS[i] (empty when the record has no MAC).
DPM_DEVNOS=()
DPM_PORTS=()
DPM_MACS=()
DPM_MALFORMED=0

# dpm_init TAG: set the log tag and the root prefix. Returns 2 on a bad root.
dpm_init() {
    DPM_TAG=$1
    DPM_ROOT=${IBMVIRT_DPM_ROOT:-}
    if [[ -n $DPM_ROOT && ( $DPM_ROOT != /* || ! -d $DPM_ROOT ) ]]; then
        printf '%s: error: IBMVIRT_DPM_ROOT must be an absolute path to a directory\n' \
            "$DPM_TAG" >&2
        return 2
    fi
    DPM_ROOT=${DPM_ROOT%/}
}

# dpm_find_tool NAME: set REPLY to the path of NAME in the standard system
# directories under the root. udev runs programs with a minimal PATH, so PATH
# is not used at all.
dpm_find_tool() {
    local dir
    for dir in /usr/sbin /sbin /usr/bin /bin; do
        if [[ -f $DPM_ROOT$dir/$1 && -x $DPM_ROOT$dir/$1 ]]; then
            REPLY=$DPM_ROOT$dir/$1
            return 0
        fi
    done
    REPLY=""
    return 1
}

# dpm_log LEVEL MESSAGE: LEVEL is info, warning or err. Lines go to stderr
# (the journal and the console when run by the systemd unit), to the journal
# through logger when stderr is not already the journal, and to DPM_CONSOLE
# when set.
dpm_log() {
    local level=$1 msg=$2 line keep=$REPLY
    if [[ $level == info ]]; then
        line="$DPM_TAG: $msg"
    else
        line="$DPM_TAG: $level: $msg"
    fi
    printf '%s\n' "$line" >&2
    if [[ -z $JOURNAL_STREAM ]] && dpm_find_tool logger; then
        "$REPLY" -t "$DPM_TAG" -p "daemon.$level" -- "$msg" 2>/dev/null || true
    fi
    if [[ -n $DPM_CONSOLE && -w $DPM_CONSOLE ]]; then
        printf '%s\n' "$line" 2>/dev/null >>"$DPM_CONSOLE" || true
    fi
    # Callers may still need REPLY.
    REPLY=$keep
}

# dpm_printable TEXT: set REPLY to TEXT made safe for a log line: at most 64
# characters, every byte that is not a printable non-blank ASCII character
# shown as '?'.
dpm_printable() {
    local text=$1
    if ((${#text} > 64)); then
        text=${text:0:64}
        text=${text//[^[:graph:]]/?}
        REPLY="$text... (${#1} characters)"
    else
        REPLY=${text//[^[:graph:]]/?}
    fi
}

# dpm_mac_colons MAC: set REPLY to a 12-digit MAC written as aa:bb:cc:dd:ee:ff.
dpm_mac_colons() {
    local m=$1
    REPLY="${m:0:2}:${m:2:2}:${m:4:2}:${m:6:2}:${m:8:2}:${m:10:2}"
}

_dpm_malformed() {
    DPM_MALFORMED=$((DPM_MALFORMED + 1))
    if ((DPM_MALFORMED <= DPM_MAX_LISTED_MALFORMED)); then
        dpm_printable "$1"
        dpm_log warning "skipping malformed NIC record '$REPLY': $2"
    fi
}

# _dpm_add_record TEXT TERMINATED: validate one record (without its ';') and
# append it to the DPM_* arrays.
_dpm_add_record() {
    local raw=$1 terminated=$2 rec devno port mac="" shown i
    local -a fields
    local re_devno='^[0-9a-f]{4}$' re_port='^[01]$' re_mac='^[0-9a-f]{12}$'
    local re_record='^[0-9a-f]{4},[01](,[0-9a-f]{12})?$'

    shown=$raw
    [[ $terminated == yes ]] && shown="$raw;"
    if [[ $terminated != yes ]]; then
        _dpm_malformed "$shown" "a record must end with ';'"
        return
    fi
    if [[ -z $raw ]]; then
        _dpm_malformed "$shown" "empty record"
        return
    fi
    rec=${raw,,}
    IFS=, read -r -a fields <<<"$rec"
    devno=${fields[0]:-}
    port=${fields[1]:-}
    if ((${#fields[@]} < 2 || ${#fields[@]} > 3)); then
        _dpm_malformed "$shown" "expected <devno>,<port>[,<mac>];"
        return
    fi
    if [[ ! $devno =~ $re_devno ]]; then
        _dpm_malformed "$shown" "the device number must be 4 hex digits"
        return
    fi
    if [[ ! $port =~ $re_port ]]; then
        _dpm_malformed "$shown" "the port must be 0 or 1"
        return
    fi
    if ((${#fields[@]} == 3)); then
        mac=${fields[2]}
        if [[ ! $mac =~ $re_mac ]]; then
            _dpm_malformed "$shown" "the MAC must be 12 hex digits without separators"
            return
        fi
        case ${mac:1:1} in
        2 | 6 | a | e) ;;
        *)
            _dpm_malformed "$shown" \
                "the MAC is not a locally administered unicast address (OSA accepts only those)"
            return
            ;;
        esac
    fi
    # The whole record once more: catches what the field split hides
    # (a trailing ',' for instance).
    if [[ ! $rec =~ $re_record ]]; then
        _dpm_malformed "$shown" "expected <devno>,<port>[,<mac>];"
        return
    fi
    # A qeth device uses devno, devno+1 and devno+2.
    if ((16#$devno > 16#fffd)); then
        _dpm_malformed "$shown" "the device number leaves no room for the 3 device numbers of a qeth device"
        return
    fi
    for i in "${!DPM_DEVNOS[@]}"; do
        if [[ ${DPM_DEVNOS[i]} == "$devno" ]]; then
            if [[ ${DPM_PORTS[i]} == "$port" && ${DPM_MACS[i]} == "$mac" ]]; then
                dpm_log info "ignoring duplicate NIC record '$shown'"
            else
                dpm_log warning "ignoring NIC record '$shown': it contradicts an earlier record for 0.0.$devno, which is used"
            fi
            return
        fi
    done
    DPM_DEVNOS+=("$devno")
    DPM_PORTS+=("$port")
    DPM_MACS+=("$mac")
}

# dpm_read_records: parse the NIC records of the kernel command line into the
# DPM_* arrays. Returns 1 if the command line cannot be read.
dpm_read_records() {
    _dpm_read_records ""
}

# dpm_read_records_of DEVNO: like dpm_read_records, but only the records whose
# first field is DEVNO (4 lower-case hex digits; the field in either case) are
# read, so only they can be logged as malformed or duplicated; every other
# record is passed over in silence. ibmvirt-dpm-setmac runs once per interface
# and uses this to report on its own device only; ibmvirt-dpm-netconfig reads
# and reports all records, once per boot. The record found for DEVNO is the
# same either way: other devices' records never decide which of DEVNO's wins.
dpm_read_records_of() {
    _dpm_read_records "$1"
}

# _dpm_read_records ONLY: ONLY is a device number, or "" for all records.
_dpm_read_records() {
    local only=$1 file="$DPM_ROOT/proc/cmdline" line="" token part field n i terminated
    local -a tokens parts
    DPM_DEVNOS=()
    DPM_PORTS=()
    DPM_MACS=()
    DPM_MALFORMED=0
    if [[ ! -r $file ]]; then
        dpm_log err "cannot read the kernel command line from $file"
        return 1
    fi
    IFS= read -r line <"$file"
    read -r -a tokens <<<"$line"
    for token in "${tokens[@]}"; do
        if [[ $token != *";"* && ($token == *=* || $token != *,*) ]]; then
            continue
        fi
        IFS=';' read -r -a parts <<<"$token"
        n=${#parts[@]}
        for i in "${!parts[@]}"; do
            part=${parts[i]}
            if [[ -n $only ]]; then
                field=${part%%,*}
                [[ ${field,,} == "$only" ]] || continue
            fi
            terminated=yes
            if ((i == n - 1)) && [[ $token != *";" ]]; then
                terminated=no
            fi
            _dpm_add_record "$part" "$terminated"
        done
    done
    if ((DPM_MALFORMED > DPM_MAX_LISTED_MALFORMED)); then
        dpm_log warning "skipped $DPM_MALFORMED malformed NIC records in all; only the first $DPM_MAX_LISTED_MALFORMED are listed"
    fi
    return 0
}

# dpm_find_record DEVNO: set REPLY to the index of the record for DEVNO.
dpm_find_record() {
    local i
    for i in "${!DPM_DEVNOS[@]}"; do
        if [[ ${DPM_DEVNOS[i]} == "$1" ]]; then
            REPLY=$i
            return 0
        fi
    done
    REPLY=""
    return 1
}

# dpm_read_attr FILE: set REPLY to the first line of a sysfs attribute, or to
# "" if it cannot be read.
dpm_read_attr() {
    REPLY=""
    if [[ -r $1 ]]; then
        IFS= read -r REPLY <"$1" || true
    fi
}
