<#
.SYNOPSIS
    From a prepared VM to a verified run: prerequisites, install, Driver Verifier, exercise.

.DESCRIPTION
    Runs Prerequisites.ps1, Install.ps1, Verifier.ps1 and Exercise.ps1 in order, and
    Uninstall.ps1 at the end with -Uninstall. Every step is safe to re-run, so the whole
    script is too: the first run on a fresh VM stops after Verifier.ps1 because Driver
    Verifier needs a reboot (exit code 3010); reboot and run it again with the same
    arguments to continue to the exercise. With -Reboot the verifier step offers to
    restart (it asks; nothing reboots unasked).

    Exit codes: 0 passed, 1 failed (see the message and the output folder), 3010 reboot
    needed before the run can continue.

.PARAMETER PackageDir
    The driver package folder (default: next to the scripts or target\<profile>\pagewise_package).

.PARAMETER ClientPath
    pagewisectl.exe (default: next to the scripts, in the package or target folders, or PATH).

.PARAMETER DeviceTool
    What creates the device node on a first install: Auto (default: devgen if found, else
    devcon), Devgen or Devcon. See Install.ps1.

.PARAMETER DevgenPath
    devgen.exe (default: PATH, the WDK tools folder, next to the scripts).

.PARAMETER DevconPath
    devcon.exe (default: PATH, the WDK tools folder, next to the scripts).

.PARAMETER BreakOnError
    KMDF verifier DbgBreakOnError: Auto (default: 1 only when kernel debugging is on), On
    or Off. See Verifier.ps1.

.PARAMETER Cycles
    S0-idle cycles per round.

.PARAMETER SleepCycles
    pwrtest sleep cycles per round (0 skips them).

.PARAMETER OutputDir
    Where Exercise.ps1 writes its results (Prerequisites.ps1 adds prerequisites.json).

.PARAMETER Uninstall
    Remove everything after the exercise.

.PARAMETER Reboot
    Let Verifier.ps1 offer a restart.

.EXAMPLE
    .\Run-All.ps1 -PackageDir C:\pagewise\pagewise_package -ClientPath C:\pagewise\pagewisectl.exe
.EXAMPLE
    .\Run-All.ps1 -DeviceTool Devcon -BreakOnError Off
#>
[CmdletBinding()]
param(
    [string]$PackageDir,
    [string]$ClientPath,
    [ValidateSet('Auto', 'Devgen', 'Devcon')][string]$DeviceTool = 'Auto',
    [string]$DevgenPath,
    [string]$DevconPath,
    [ValidateSet('Auto', 'On', 'Off')][string]$BreakOnError = 'Auto',
    [ValidateRange(1, 100000)][int]$Cycles = 10,
    [ValidateRange(0, 1000)][int]$SleepCycles = 3,
    [string]$OutputDir,
    [switch]$Uninstall,
    [switch]$Reboot
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
. (Join-Path $PSScriptRoot 'Common.ps1')

try {
    $package = Find-PackageDir -Explicit $PackageDir
    & (Join-Path $PSScriptRoot 'Prerequisites.ps1') -PackageDir $package -OutputDir $OutputDir -DeviceTool $DeviceTool -DevgenPath $DevgenPath -DevconPath $DevconPath
    & (Join-Path $PSScriptRoot 'Install.ps1') -PackageDir $package -DeviceTool $DeviceTool -DevgenPath $DevgenPath -DevconPath $DevconPath -ClientPath $ClientPath
    $verifier = & (Join-Path $PSScriptRoot 'Verifier.ps1') -BreakOnError $BreakOnError -Reboot:$Reboot
    if ($verifier.RebootRequired) {
        Write-Host ''
        Write-Host 'Reboot, then run Run-All.ps1 again with the same arguments to continue.' -ForegroundColor Yellow
        exit 3010
    }
    $exercise = @{ Cycles = $Cycles; SleepCycles = $SleepCycles }
    if ($ClientPath) { $exercise['ClientPath'] = $ClientPath }
    if ($OutputDir) { $exercise['OutputDir'] = $OutputDir }
    & (Join-Path $PSScriptRoot 'Exercise.ps1') @exercise
    if ($Uninstall) {
        & (Join-Path $PSScriptRoot 'Uninstall.ps1') -PackageDir $package
    }
} catch {
    Write-Host "FAILED: $($_.Exception.Message)" -ForegroundColor Red
    exit 1
}
Write-Host 'Run-All passed.' -ForegroundColor Green
exit 0
