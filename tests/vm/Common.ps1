<#
.SYNOPSIS
    Helpers shared by the pagewise test-VM scripts. Dot-source it; it does nothing on its own.

.DESCRIPTION
    Written for Windows PowerShell 5.1 (the PowerShell every Windows 11 VM has) and
    PowerShell 7 alike: no PowerShell 7-only operators, ASCII only (5.1 reads a file
    without a byte-order mark in the ANSI code page).
#>

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

# The names the driver package uses. pagewise.inx declares the hardware ID and the service.
$script:PagewiseHardwareId = 'Root\Pagewise'
$script:PagewiseService = 'pagewise'
$script:PagewiseSys = 'pagewise.sys'
$script:PagewiseInf = 'pagewise.inf'
$script:RepoRoot = Split-Path -Parent (Split-Path -Parent $PSScriptRoot)

function Write-Step {
    param([Parameter(Mandatory = $true)][string]$Message)
    Write-Host ''
    Write-Host "==> $Message" -ForegroundColor Cyan
}

function Assert-Administrator {
    $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
    $principal = New-Object Security.Principal.WindowsPrincipal($identity)
    if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
        throw 'This script must run elevated: start PowerShell with "Run as administrator".'
    }
}

function Test-Administrator {
    $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
    $principal = New-Object Security.Principal.WindowsPrincipal($identity)
    return $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
}

function Invoke-Native {
    <#
    .SYNOPSIS
        Runs a console program, returns its exit code, stdout lines and stderr lines, and
        throws when the exit code is not one of AllowedExitCodes.
    .NOTES
        Windows PowerShell 5.1 turns every stderr line of a native program into an
        ErrorRecord, which $ErrorActionPreference = 'Stop' makes fatal; the preference is
        relaxed for the call only and the exit code decides instead.
    #>
    param(
        [Parameter(Mandatory = $true)][string]$FilePath,
        [string[]]$ArgumentList = @(),
        [int[]]$AllowedExitCodes = @(0),
        [switch]$Quiet
    )
    $stdout = New-Object System.Collections.Generic.List[string]
    $stderr = New-Object System.Collections.Generic.List[string]
    $saved = $ErrorActionPreference
    $ErrorActionPreference = 'Continue'
    try {
        & $FilePath @ArgumentList 2>&1 | ForEach-Object {
            if ($_ -is [System.Management.Automation.ErrorRecord]) {
                $stderr.Add($_.ToString())
            } else {
                $stdout.Add([string]$_)
            }
        }
        $code = $LASTEXITCODE
    } finally {
        $ErrorActionPreference = $saved
    }
    if (-not $Quiet) {
        foreach ($line in $stdout) { Write-Host "    $line" }
        foreach ($line in $stderr) { Write-Host "    $line" -ForegroundColor Yellow }
    }
    if ($AllowedExitCodes -notcontains $code) {
        $text = (@($stdout) + @($stderr)) -join "`n"
        throw "$FilePath $($ArgumentList -join ' ') exited with $code`n$text"
    }
    return [pscustomobject]@{
        ExitCode = $code
        StdOut   = @($stdout)
        StdErr   = @($stderr)
        Text     = (@($stdout) -join "`n")
    }
}

function Find-Tool {
    <#
    .SYNOPSIS
        Finds a WDK tool (devgen, devcon, pwrtest): an explicit path, then PATH, then the WDK's
        tools folder, then next to the scripts. Returns $null when absent.
    .NOTES
        The tools folder is WDKToolRoot\x64 where an EWDK or a NuGet WDK sets WDKToolRoot,
        else Windows Kits\10\Tools\<version>\x64 of the installed kits, newest version first
        (devgen is in kits from 10.0.22621 on), then the unversioned Tools\x64 of older kits.
    #>
    param(
        [Parameter(Mandatory = $true)][string]$Name,
        [string]$Explicit
    )
    if ($Explicit) {
        if (-not (Test-Path -LiteralPath $Explicit -PathType Leaf)) {
            throw "$Name not found at $Explicit"
        }
        return (Resolve-Path -LiteralPath $Explicit).Path
    }
    $command = Get-Command $Name -CommandType Application -ErrorAction SilentlyContinue |
        Select-Object -First 1
    if ($null -ne $command) { return $command.Source }
    $folders = @()
    if ($env:WDKToolRoot) { $folders += Join-Path $env:WDKToolRoot 'x64' }
    foreach ($base in @(${env:ProgramFiles(x86)}, $env:ProgramFiles)) {
        if (-not $base) { continue }
        $tools = Join-Path $base 'Windows Kits\10\Tools'
        if (-not (Test-Path -LiteralPath $tools)) { continue }
        $versions = @(Get-ChildItem -LiteralPath $tools -Directory -ErrorAction SilentlyContinue |
                Where-Object { $_.Name -match '^\d+\.\d+\.\d+\.\d+$' } |
                Sort-Object -Property { [version]$_.Name } -Descending)
        foreach ($version in $versions) { $folders += Join-Path $version.FullName 'x64' }
        $folders += Join-Path $tools 'x64'
    }
    $folders += $PSScriptRoot
    foreach ($folder in $folders) {
        $candidate = Join-Path $folder $Name
        if (Test-Path -LiteralPath $candidate -PathType Leaf) { return $candidate }
    }
    return $null
}

function Find-DeviceTool {
    <#
    .SYNOPSIS
        The tool that creates the root-enumerated device node, as an object with Name
        ('devgen' or 'devcon') and Path; $null when the chosen tool is absent.
    .NOTES
        Microsoft now recommends devgen (WDK tools, 10.0.22621 and later), with pnputil to
        install the driver on the new node, over devcon. Auto takes devgen when it is found
        and falls back to devcon, which older kits have.
    #>
    param(
        [ValidateSet('Auto', 'Devgen', 'Devcon')][string]$Choice = 'Auto',
        [string]$DevgenPath,
        [string]$DevconPath
    )
    if ($Choice -ne 'Devcon') {
        $devgen = Find-Tool -Name 'devgen.exe' -Explicit $DevgenPath
        if ($null -ne $devgen) { return [pscustomobject]@{ Name = 'devgen'; Path = $devgen } }
        if ($Choice -eq 'Devgen') { return $null }
    }
    $devcon = Find-Tool -Name 'devcon.exe' -Explicit $DevconPath
    if ($null -ne $devcon) { return [pscustomobject]@{ Name = 'devcon'; Path = $devcon } }
    return $null
}

function Get-BcdCurrentValue {
    <#
    .SYNOPSIS
        The value of one element of the current boot entry ('bcdedit /enum {current}'), or
        $null when the entry does not set it. Needs elevation.
    .NOTES
        Element names (testsigning, debug) are not localised, so the scripts key on them.
    #>
    param([Parameter(Mandatory = $true)][string]$Element)
    $bcd = Invoke-Native -FilePath 'bcdedit.exe' -ArgumentList @('/enum', '{current}') -Quiet
    $pattern = '^\s*' + [regex]::Escape($Element) + '\s+(\S.*?)\s*$'
    foreach ($line in $bcd.StdOut) {
        if ($line -match $pattern) { return $Matches[1] }
    }
    return $null
}

function Test-BcdOn {
    <#
    .SYNOPSIS
        True when a bcdedit boolean value reads as on (Yes, On, 1).
    #>
    param([string]$Value)
    return ($null -ne $Value) -and ($Value -match '^(Yes|On|1)$')
}

function Find-Client {
    <#
    .SYNOPSIS
        Finds pagewisectl.exe: an explicit path, next to the scripts, the package folder,
        the repository's target folders, then PATH.
    #>
    param([string]$Explicit, [string]$PackageDir)
    if ($Explicit) {
        if (-not (Test-Path -LiteralPath $Explicit -PathType Leaf)) {
            throw "pagewisectl not found at $Explicit"
        }
        return (Resolve-Path -LiteralPath $Explicit).Path
    }
    $candidates = @((Join-Path $PSScriptRoot 'pagewisectl.exe'))
    if ($PackageDir) { $candidates += Join-Path $PackageDir 'pagewisectl.exe' }
    foreach ($profileName in @('release', 'debug')) {
        $candidates += Join-Path $script:RepoRoot "target\$profileName\pagewisectl.exe"
    }
    foreach ($candidate in $candidates) {
        if (Test-Path -LiteralPath $candidate -PathType Leaf) { return $candidate }
    }
    $command = Get-Command 'pagewisectl.exe' -CommandType Application -ErrorAction SilentlyContinue |
        Select-Object -First 1
    if ($null -ne $command) { return $command.Source }
    throw 'pagewisectl.exe not found: build it with "cargo build -p pagewise-client --release" and pass -ClientPath'
}

function Find-PackageDir {
    <#
    .SYNOPSIS
        The driver package folder (pagewise.sys, pagewise.inf, pagewise.cat, the .cer):
        explicit, next to the scripts, or target\<profile>\pagewise_package of the repository.
    #>
    param([string]$Explicit)
    $candidates = @()
    if ($Explicit) {
        $candidates += $Explicit
    } else {
        $candidates += Join-Path $PSScriptRoot 'pagewise_package'
        foreach ($profileName in @('release', 'debug')) {
            $candidates += Join-Path $script:RepoRoot "target\$profileName\pagewise_package"
        }
    }
    foreach ($candidate in $candidates) {
        if (Test-Path -LiteralPath (Join-Path $candidate $script:PagewiseInf) -PathType Leaf) {
            return (Resolve-Path -LiteralPath $candidate).Path
        }
    }
    throw "No driver package (a folder with $($script:PagewiseInf)) at: $($candidates -join ', '). Build it with 'cargo make' or pass -PackageDir."
}

function Get-PagewiseDevice {
    <#
    .SYNOPSIS
        Every device node with the pagewise hardware ID, present or not.
    #>
    $all = @(Get-PnpDevice -ErrorAction SilentlyContinue)
    return @($all | Where-Object {
            $ids = $_.HardwareID
            ($null -ne $ids) -and (@($ids) -contains $script:PagewiseHardwareId)
        })
}

function Get-PresentPagewiseDevice {
    return @(Get-PagewiseDevice | Where-Object { $_.Present })
}

function Wait-PagewiseStarted {
    <#
    .SYNOPSIS
        Waits until exactly one present pagewise device is started without a problem code.
    #>
    param([int]$TimeoutSeconds = 60)
    $deadline = (Get-Date).AddSeconds($TimeoutSeconds)
    do {
        $present = @(Get-PresentPagewiseDevice)
        if ($present.Count -eq 1 -and $present[0].Status -eq 'OK') {
            return $present[0]
        }
        Start-Sleep -Seconds 1
    } while ((Get-Date) -lt $deadline)
    $states = ($present | ForEach-Object { "$($_.InstanceId): Status=$($_.Status) Problem=$($_.Problem)" }) -join '; '
    if (-not $states) { $states = 'no device' }
    throw "The pagewise device did not start within $TimeoutSeconds s ($states). See setupapi.dev.log in $env:windir\INF."
}

function Get-DeviceParametersPath {
    <#
    .SYNOPSIS
        Registry path of a device's hardware key (Device Parameters), where the INF writes
        PowerPageable, IdleTimeoutMs and SpecialFileSupport.
    #>
    param([Parameter(Mandatory = $true)][string]$InstanceId)
    return "HKLM:\SYSTEM\CurrentControlSet\Enum\$InstanceId\Device Parameters"
}

function Invoke-Client {
    <#
    .SYNOPSIS
        Runs pagewisectl with --json, saves stdout to OutFile, returns the parsed object
        and the exit code. Throws unless the exit code is allowed.
    #>
    param(
        [Parameter(Mandatory = $true)][string]$ClientPath,
        [Parameter(Mandatory = $true)][string[]]$Arguments,
        [string]$OutFile,
        [int[]]$AllowedExitCodes = @(0)
    )
    $result = Invoke-Native -FilePath $ClientPath -ArgumentList (@($Arguments) + '--json') -AllowedExitCodes @(0, 1, 2, 3, 4) -Quiet
    if ($OutFile) {
        Set-Content -LiteralPath $OutFile -Value $result.Text -Encoding ASCII
    }
    $parsed = $null
    if ($result.Text.Trim()) {
        $parsed = $result.Text | ConvertFrom-Json
    }
    if ($AllowedExitCodes -notcontains $result.ExitCode) {
        $why = ($result.StdErr -join ' ')
        throw "pagewisectl $($Arguments -join ' ') exited with $($result.ExitCode): $why"
    }
    return [pscustomobject]@{ ExitCode = $result.ExitCode; Json = $parsed }
}

function Get-VerifierQuery {
    <#
    .SYNOPSIS
        Runs 'verifier /query' and parses it: the drivers being verified and every numeric
        counter, globally and per driver.
    .NOTES
        The parser keys on the shape of the lines ("Name: x.sys, loads: n, ..." and
        "Counter: number"), not on the set of counters, which differs between Windows builds.
    #>
    $run = Invoke-Native -FilePath 'verifier.exe' -ArgumentList @('/query') -AllowedExitCodes @(0, 1, 2) -Quiet
    $global = [ordered]@{}
    $drivers = [ordered]@{}
    $current = $null
    foreach ($raw in $run.StdOut) {
        $line = $raw.Trim()
        if ($line -match '^Name:\s*([^,\s]+)\s*(,.*)?$') {
            $current = $Matches[1].ToLowerInvariant()
            $drivers[$current] = [ordered]@{}
            if ($Matches[2]) {
                foreach ($pair in ($Matches[2].TrimStart(',') -split ',')) {
                    if ($pair -match '^\s*([A-Za-z ]+?)\s*:\s*(\d+)\s*$') {
                        $drivers[$current][$Matches[1]] = [int64]$Matches[2]
                    }
                }
            }
            continue
        }
        if ($line -match '^([A-Za-z][A-Za-z0-9 ]*?)\s*:\s*(0x[0-9A-Fa-f]+|\d+)$') {
            $name = $Matches[1]
            $text = $Matches[2]
            if ($text.StartsWith('0x')) {
                $value = [Convert]::ToInt64($text.Substring(2), 16)
            } else {
                $value = [int64]$text
            }
            if ($null -ne $current) { $drivers[$current][$name] = $value } else { $global[$name] = $value }
        }
    }
    return [pscustomobject]@{
        Text     = $run.Text
        Global   = $global
        Drivers  = $drivers
        Verified = @($drivers.Keys)
    }
}

function Get-VerifierFault {
    <#
    .SYNOPSIS
        The nonzero fault counters of a parsed 'verifier /query': any counter whose name
        says fault, violation or error, and failed pool allocations.
    #>
    param([Parameter(Mandatory = $true)]$Query)
    $faults = @()
    $scopes = @(@{ Name = 'global'; Counters = $Query.Global })
    foreach ($driver in $Query.Drivers.Keys) {
        $scopes += @{ Name = $driver; Counters = $Query.Drivers[$driver] }
    }
    foreach ($scope in $scopes) {
        foreach ($counter in $scope.Counters.Keys) {
            $isFault = ($counter -match '(?i)fault|violation|error') -or ($counter -match '(?i)^AllocationsFailed')
            if ($isFault -and $scope.Counters[$counter] -ne 0) {
                $faults += "$($scope.Name): $counter = $($scope.Counters[$counter])"
            }
        }
    }
    return $faults
}

function Get-VerifierSettings {
    <#
    .SYNOPSIS
        The Driver Verifier settings for the next boot: drivers, flags, and whether Force
        IRQL Checking (0x2) is among them.
    #>
    # What the next boot will use. verifier.exe stores it in the Memory Management key
    # (VerifyDrivers: the image names, VerifyDriverLevel: the flags), which is not
    # localised; 'verifier /querysettings' ("Force IRQL checking: Enabled", the driver
    # list) is read too, for the log and as a fallback.
    $run = Invoke-Native -FilePath 'verifier.exe' -ArgumentList @('/querysettings') -AllowedExitCodes @(0, 1, 2) -Quiet
    $lines = @($run.StdOut | ForEach-Object { $_.Trim() })
    $forceIrql = @($lines | Where-Object { $_ -match '^Force IRQL checking\s*:\s*Enabled' }).Count -gt 0
    $listed = @($lines | Where-Object { $_ -match '^[A-Za-z0-9_.-]+\.sys$' } | ForEach-Object { $_.ToLowerInvariant() })
    $mm = Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management'
    $names = $mm.PSObject.Properties.Name
    if ($names -contains 'VerifyDrivers' -and $mm.VerifyDrivers) {
        $listed += @(([string]$mm.VerifyDrivers).ToLowerInvariant() -split '\s+' | Where-Object { $_ })
    }
    $level = 0
    if ($names -contains 'VerifyDriverLevel') { $level = [int64]$mm.VerifyDriverLevel }
    if (($level -band 0x2) -ne 0) { $forceIrql = $true }
    return [pscustomobject]@{
        Text      = $run.Text
        ForceIrql = $forceIrql
        Level     = $level
        Drivers   = @($listed | Sort-Object -Unique)
    }
}
