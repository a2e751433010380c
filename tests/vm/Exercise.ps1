<#
.SYNOPSIS
    Exercises the installed pagewise driver under Driver Verifier and fails on anything wrong.

.DESCRIPTION
    Two rounds, each of which:
      - saves 'pagewisectl config' (exit 1 there means a power-up or dispatch callback sits
        in a pageable or discardable section);
      - runs 'pagewisectl cycles N': N S0-idle power-down/power-up cycles. The client only
        reads through the driver's control queue, which does not wake the device, waits for
        the idle power-down after IdleTimeoutMs, wakes the device with 'hold 0' through the
        power-managed queue, and reports time to working (median, p95, max);
      - where the VM can sleep and pwrtest.exe is present, runs pwrtest sleep cycles, one
        pwrtest run per cycle: S3 ('pwrtest /sleep /c:1 /s:3'), or modern standby
        ('pwrtest /cs /c:1') when 'powercfg /a' offers S0 low-power idle instead. Before
        each S3 cycle 'pagewisectl hold' keeps the device in D0 for that cycle's awake time,
        sleep and a margin, so that every system sleep is a real D0Exit/D0Entry of the
        device (an idle device would sleep through). Renewed per cycle, the hold never has
        to outlast more than one cycle, which keeps it within the client's 600000 ms limit
        however many cycles run; the log is read after each cycle, so a long run cannot
        overflow the driver's 64-record ring either;
      - saves stats and the transition log.
    Between the rounds the per-device PowerPageable value (in the device's hardware key,
    HKLM\SYSTEM\CurrentControlSet\Enum\<instance>\Device Parameters) is flipped and the
    device restarted ('pnputil /restart-device'), so both the power-pageable and the
    power-nonpageable (power-down section locked) configurations run. The original value
    is restored at the end, also after a failure.
    Finally 'verifier /query' is saved and parsed.

    Everything goes to -OutputDir (default tests\vm\out\<timestamp>): *.json from the
    client, one sleep-NNN folder per sleep cycle (its log.json and the pwrtest logs),
    verifier-before.txt / verifier-after.txt, summary.json.

    The run fails (throws, exit code 1) on any error, any cycle missing from the client's
    report or from the sleep log, any callback logged as failed, a placement violation,
    Driver Verifier not active for pagewise.sys (unless -AllowUnverified), or any nonzero
    fault counter in 'verifier /query'. Safe to re-run.

.PARAMETER Cycles
    S0-idle cycles per round (default 10).

.PARAMETER SleepCycles
    pwrtest sleep cycles per round (default 3; 0 skips them).

.PARAMETER SleepState
    Auto (from 'powercfg /a', English output), S3, S0ix or None.

.PARAMETER SleepSeconds
    pwrtest /p: time asleep per cycle (5 to 270: with DelaySeconds and the margin, one
    cycle's D0 hold stays within 600000 ms).

.PARAMETER DelaySeconds
    pwrtest /d: time awake before each sleep (5 to 270, as SleepSeconds).

.PARAMETER OutputDir
    Where the results go (default tests\vm\out\<timestamp>).

.PARAMETER ClientPath
    pagewisectl.exe (default: next to the scripts, the repository's target folders, PATH).

.PARAMETER PwrtestPath
    pwrtest.exe (default: PATH, the WDK Tools folder, next to the scripts).

.PARAMETER SkipPageabilitySwitch
    Run one round only, with the current PowerPageable setting.

.PARAMETER AllowUnverified
    Do not fail when Driver Verifier is not active for pagewise.sys.

.EXAMPLE
    .\Exercise.ps1 -Cycles 20 -SleepCycles 5
#>
[CmdletBinding()]
param(
    [ValidateRange(1, 100000)][int]$Cycles = 10,
    [ValidateRange(0, 1000)][int]$SleepCycles = 3,
    [ValidateSet('Auto', 'S3', 'S0ix', 'None')][string]$SleepState = 'Auto',
    [ValidateRange(5, 270)][int]$SleepSeconds = 30,
    [ValidateRange(5, 270)][int]$DelaySeconds = 30,
    [string]$OutputDir,
    [string]$ClientPath,
    [string]$PwrtestPath,
    [switch]$SkipPageabilitySwitch,
    [switch]$AllowUnverified
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
. (Join-Path $PSScriptRoot 'Common.ps1')

Assert-Administrator
if (-not $OutputDir) {
    $OutputDir = Join-Path $PSScriptRoot ('out\' + (Get-Date -Format 'yyyyMMdd-HHmmss'))
}
New-Item -ItemType Directory -Force -Path $OutputDir | Out-Null
$OutputDir = (Resolve-Path -LiteralPath $OutputDir).Path
$failures = New-Object System.Collections.Generic.List[string]
function Add-Failure {
    param([string]$Message)
    $failures.Add($Message)
    Write-Host "    FAIL: $Message" -ForegroundColor Red
}

$client = Find-Client -Explicit $ClientPath
$device = Wait-PagewiseStarted -TimeoutSeconds 30
$instanceId = $device.InstanceId
Write-Step "Device $instanceId, client $client, output $OutputDir"

Write-Step 'Driver Verifier state before the run'
$verifierBefore = Get-VerifierQuery
Set-Content -LiteralPath (Join-Path $OutputDir 'verifier-before.txt') -Value $verifierBefore.Text -Encoding ASCII
if ($verifierBefore.Verified -contains $PagewiseSys) {
    Write-Host '    verifier active for pagewise.sys'
} elseif ($AllowUnverified) {
    Write-Warning 'Driver Verifier is not active for pagewise.sys (-AllowUnverified given).'
} else {
    Add-Failure 'Driver Verifier is not active for pagewise.sys: run Verifier.ps1, reboot, then re-run (or pass -AllowUnverified).'
}

# Which system sleep the VM offers. 'powercfg /a' lists available states first, then
# the unavailable ones after a line saying "not available".
$sleepMode = $SleepState
if ($sleepMode -eq 'Auto') {
    $sleepMode = 'None'
    $available = New-Object System.Collections.Generic.List[string]
    foreach ($line in (Invoke-Native -FilePath 'powercfg.exe' -ArgumentList @('/a') -AllowedExitCodes @(0, 1) -Quiet).StdOut) {
        if ($line -match '(?i)not available') { break }
        $available.Add($line)
    }
    $text = $available -join "`n"
    if ($text -match 'Standby \(S3\)') {
        $sleepMode = 'S3'
    } elseif ($text -match 'S0 Low Power Idle') {
        $sleepMode = 'S0ix'
    }
}
$pwrtest = $null
if ($SleepCycles -gt 0 -and $sleepMode -ne 'None') {
    $pwrtest = Find-Tool -Name 'pwrtest.exe' -Explicit $PwrtestPath
    if ($null -eq $pwrtest) {
        Write-Warning "The VM offers $sleepMode but pwrtest.exe was not found (WDK Tools folder, PATH, or -PwrtestPath): sleep cycles skipped."
    }
}
Write-Host "    system sleep: $sleepMode; pwrtest: $(if ($pwrtest) { $pwrtest } else { 'not used' })"

function Format-Ms {
    param([double]$Units100ns)
    return ('{0:N3} ms' -f ($Units100ns / 10000.0))
}

# One S3 cycle's D0 hold: pwrtest's awake time before the sleep, the sleep, and a margin for
# suspend and resume. SleepSeconds and DelaySeconds are bounded so that it stays within the
# 600000 ms a hold may last (MAX_HOLD_D0_MS in pagewise-ioctl).
$holdMarginSeconds = 60
$holdMs = ($DelaySeconds + $SleepSeconds + $holdMarginSeconds) * 1000

function Invoke-SleepCycles {
    param([string]$Dir)
    $exits = 0
    $entries = 0
    for ($cycle = 1; $cycle -le $SleepCycles; $cycle++) {
        $cycleDir = Join-Path $Dir ('sleep-{0:D3}' -f $cycle)
        New-Item -ItemType Directory -Force -Path $cycleDir | Out-Null
        $mark = (Invoke-Client -ClientPath $client -Arguments @('log')).Json.next_sequence
        if ($sleepMode -eq 'S3') {
            # Renewed for every cycle: the device must be in D0 when the system sleeps, so
            # that the sleep powers it down and the resume brings it back. A later hold
            # extends the running one; the device restart after the round ends the last.
            Invoke-Client -ClientPath $client -Arguments @('hold', "$holdMs") | Out-Null
            $pwrArgs = @('/sleep', '/c:1', '/s:3', "/p:$SleepSeconds", "/d:$DelaySeconds")
        } else {
            $pwrArgs = @('/cs', '/c:1', "/p:$SleepSeconds", "/d:$DelaySeconds")
        }
        Push-Location -LiteralPath $cycleDir
        try {
            Invoke-Native -FilePath $pwrtest -ArgumentList $pwrArgs -AllowedExitCodes @(0) | Out-Null
        } catch {
            Add-Failure "sleep cycle ${cycle}: pwrtest $($pwrArgs -join ' '): $($_.Exception.Message)"
        } finally {
            Pop-Location
        }
        $log = (Invoke-Client -ClientPath $client -Arguments @('log', '--since', "$mark") -OutFile (Join-Path $cycleDir 'log.json')).Json
        $records = @($log.records)
        $cycleExits = @($records | Where-Object { $_.callback -eq 'EvtDeviceD0Exit' }).Count
        $cycleEntries = @($records | Where-Object { $_.callback -eq 'EvtDeviceD0Entry' }).Count
        $exits += $cycleExits
        $entries += $cycleEntries
        if ($sleepMode -eq 'S3' -and ($cycleExits -lt 1 -or $cycleEntries -lt 1)) {
            Add-Failure "S3 cycle ${cycle}: $cycleExits D0Exit / $cycleEntries D0Entry logged, expected one of each"
        }
        if ($log.lost -gt 0) { Add-Failure "sleep cycle ${cycle}: $($log.lost) log record(s) overwritten" }
        foreach ($failed in @($records | Where-Object { $_.failed })) {
            Add-Failure "sleep cycle ${cycle}: $($failed.callback) (sequence $($failed.sequence)) failed with $($failed.status)"
        }
    }
    Write-Host "    sleep: $exits D0Exit, $entries D0Entry over $SleepCycles cycle(s)"
}

function Invoke-Round {
    param([string]$Label)
    $dir = Join-Path $OutputDir $Label
    New-Item -ItemType Directory -Force -Path $dir | Out-Null
    Write-Step "Round $Label"
    $config = Invoke-Client -ClientPath $client -Arguments @('config') -OutFile (Join-Path $dir 'config.json') -AllowedExitCodes @(0, 1)
    if ($config.ExitCode -ne 0) {
        Add-Failure "$Label config: $($config.Json.violations) placement violation(s), see config.json"
    }
    $pageable = [bool]$config.Json.power_pageable
    Write-Host "    power pageable: $pageable ($($config.Json.reason_text)); power-down locked: $($config.Json.power_down_locked); idle timeout $($config.Json.idle_timeout_ms) ms"
    Invoke-Client -ClientPath $client -Arguments @('stats') -OutFile (Join-Path $dir 'stats-before.json') | Out-Null

    $run = Invoke-Client -ClientPath $client -Arguments @('cycles', "$Cycles") -OutFile (Join-Path $dir 'cycles.json') -AllowedExitCodes @(0, 1)
    $report = $run.Json
    if ($null -eq $report -or -not ($report.PSObject.Properties.Name -contains 'completed')) {
        Add-Failure "$Label cycles: no report (exit $($run.ExitCode))"
    } else {
        if ($report.completed -lt $Cycles) {
            Add-Failure "$Label cycles: $($report.completed) of $Cycles completed (timed out: $($report.timed_out))"
        }
        foreach ($f in @($report.failed_callbacks)) {
            Add-Failure "$Label cycles: $($f.callback) (sequence $($f.sequence)) returned $($f.status)"
        }
        if ($report.lost_records -gt 0) { Add-Failure "$Label cycles: $($report.lost_records) log record(s) lost" }
        if ($null -ne $report.log_summary) {
            $s = $report.log_summary
            Write-Host "    $($report.completed) cycles; time to working median $(Format-Ms $s.median_100ns), p95 $(Format-Ms $s.p95_100ns), max $(Format-Ms $s.max_100ns)"
        }
    }

    if ($null -ne $pwrtest) {
        Invoke-SleepCycles -Dir $dir
    }

    Invoke-Client -ClientPath $client -Arguments @('stats') -OutFile (Join-Path $dir 'stats-after.json') | Out-Null
    Invoke-Client -ClientPath $client -Arguments @('log') -OutFile (Join-Path $dir 'log.json') | Out-Null
    $now = @(Get-PresentPagewiseDevice)
    if ($now.Count -ne 1 -or $now[0].Status -ne 'OK') {
        Add-Failure "${Label}: device not started after the round"
    }
    return [pscustomobject]@{ Label = $Label; PowerPageable = $pageable; Cycles = $report }
}

function Restart-Pagewise {
    $r = Invoke-Native -FilePath 'pnputil.exe' -ArgumentList @('/restart-device', $instanceId) -AllowedExitCodes @(0, 3010)
    if ($r.ExitCode -eq 3010) {
        throw 'pnputil could not restart the device without a reboot.'
    }
    Wait-PagewiseStarted -TimeoutSeconds 60 | Out-Null
}

$rounds = New-Object System.Collections.Generic.List[object]
$paramsPath = Get-DeviceParametersPath -InstanceId $instanceId
$original = $null
$originalRead = $false
try {
    $first = Invoke-Round -Label 'round1'
    $rounds.Add($first)
    if (-not $SkipPageabilitySwitch) {
        $property = Get-ItemProperty -LiteralPath $paramsPath -Name 'PowerPageable' -ErrorAction SilentlyContinue
        if ($null -ne $property) { $original = $property.PowerPageable }
        $originalRead = $true
        $new = 1
        if ($first.PowerPageable) { $new = 0 }
        Write-Step "Switching PowerPageable to $new and restarting the device"
        New-ItemProperty -LiteralPath $paramsPath -Name 'PowerPageable' -PropertyType DWord -Value $new -Force | Out-Null
        Restart-Pagewise
        $config = (Invoke-Client -ClientPath $client -Arguments @('config')).Json
        if ([int][bool]$config.power_pageable -ne $new) {
            Add-Failure "PowerPageable = $new but the driver reports power_pageable = $($config.power_pageable) ($($config.reason_text))"
        }
        $rounds.Add((Invoke-Round -Label 'round2'))
    }
} catch {
    Add-Failure "$($_.Exception.Message)"
} finally {
    if ($originalRead) {
        Write-Step 'Restoring the original PowerPageable setting'
        try {
            if ($null -eq $original) {
                Remove-ItemProperty -LiteralPath $paramsPath -Name 'PowerPageable' -ErrorAction SilentlyContinue
            } else {
                New-ItemProperty -LiteralPath $paramsPath -Name 'PowerPageable' -PropertyType DWord -Value $original -Force | Out-Null
            }
            Restart-Pagewise
        } catch {
            Add-Failure "restoring PowerPageable: $($_.Exception.Message)"
        }
    }
}

Write-Step 'Driver Verifier after the run'
$verifierAfter = Get-VerifierQuery
Set-Content -LiteralPath (Join-Path $OutputDir 'verifier-after.txt') -Value $verifierAfter.Text -Encoding ASCII
$faults = @(Get-VerifierFault -Query $verifierAfter)
foreach ($fault in $faults) { Add-Failure "verifier: $fault" }
if (-not $AllowUnverified -and $verifierAfter.Verified -notcontains $PagewiseSys) {
    Add-Failure 'verifier /query does not list pagewise.sys after the run'
}
if ($verifierAfter.Verified.Count -gt 0 -and $verifierAfter.Global.Count -eq 0) {
    Add-Failure 'verifier /query output not recognised (no counters parsed); see verifier-after.txt'
}
Write-Host "    $($faults.Count) nonzero fault counter(s)"

$summary = [pscustomobject]@{
    finished  = (Get-Date).ToString('o')
    device    = $instanceId
    sleep     = $sleepMode
    rounds    = @($rounds)
    failures  = @($failures)
}
$summary | ConvertTo-Json -Depth 8 | Set-Content -LiteralPath (Join-Path $OutputDir 'summary.json') -Encoding ASCII

if ($failures.Count -gt 0) {
    throw "Exercise failed with $($failures.Count) problem(s); details in $OutputDir"
}
Write-Host "Exercise passed; results in $OutputDir" -ForegroundColor Green
