import { describe, expect, it } from 'vitest';
import { parseIwScan } from '../../../../agent/setup-wizard/wifi-scan.ts';

// Trimmed `iw dev wlan0 scan` output (iw 6.9): two access points of one network, an open
// café network, and a hidden network (empty SSID).
const SCAN = `BSS 11:22:33:44:55:66(on wlan0)
	last seen: 1201.123s [boottime]
	TSF: 3817207183 usec (0d, 01:03:37)
	freq: 2412
	beacon interval: 100 TUs
	signal: -71.00 dBm
	SSID: Okafor Home
	Supported rates: 1.0* 2.0* 5.5* 11.0* 18.0 24.0 36.0 54.0
	RSN:	 * Version: 1
		 * Group cipher: CCMP
BSS 11:22:33:44:55:77(on wlan0)
	freq: 5180
	signal: -48.00 dBm
	SSID: Okafor Home
	RSN:	 * Version: 1
BSS aa:bb:cc:dd:ee:ff(on wlan0)
	freq: 2437
	signal: -80.00 dBm
	SSID: Café Libre
BSS 01:02:03:04:05:06(on wlan0)
	freq: 2462
	signal: -60.00 dBm
	SSID: 
	WPA:	 * Version: 1
`;

describe("the wizard's Wi-Fi scan (iw's output)", () => {
  it('lists each network once with its strongest signal, secured or open, strongest first, without hidden ones', () => {
    expect(parseIwScan(SCAN)).toEqual([
      { ssid: 'Okafor Home', signalDbm: -48, secured: true },
      { ssid: 'Café Libre', signalDbm: -80, secured: false },
    ]);
  });

  it('finds nothing in an empty scan', () => {
    expect(parseIwScan('')).toEqual([]);
  });
});
