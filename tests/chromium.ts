// How every browser test launches Chromium: Debian's build (Playwright cannot download its own
// here), headless, with WebGPU on its bundled SwiftShader and no background network.
export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const chromiumArgs = [
	'--enable-unsafe-webgpu',
	'--use-webgpu-adapter=swiftshader',
	'--no-sandbox',
	'--disable-background-networking',
	'--disable-component-update',
	'--disable-sync',
	'--disable-quic',
	'--no-first-run'
];
