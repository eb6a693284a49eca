/** Saves data as a file the browser downloads (preset files, trained SAEs). */
export function downloadFile(name: string, data: BlobPart, type: string) {
	const a = document.createElement('a');
	a.href = URL.createObjectURL(new Blob([data], { type }));
	a.download = name;
	a.click();
	setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}
